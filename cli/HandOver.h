#pragma once
// How one kmidi binary hands a command to another: it replaces itself by it
// (exec: same pid, same argv), so signals, exit codes, torchrun and Slurm see
// one process as before. Each binary is named kmidi, so the process name is
// kmidi whichever runs the command.

#include <string>

namespace kmidi::cli {

/// Whether any argument names a command that runs models, where OpenMP's
/// wait policy matters.
bool runs_models(int argc, char** argv);

/// libgomp reads OMP_WAIT_POLICY once, when LibTorch loads it (before main).
/// Its default lets idle OpenMP threads spin, which on a small machine starves
/// the data loader and halves training throughput (BENCHMARKS.md). Sets it to
/// passive for a model command unless the user set it; true when it did.
bool choose_passive_openmp(int argc, char** argv);

/// `relative` resolved against the folder of this executable (/proc/self/exe).
std::string beside_this_binary(const std::string& relative);

/// Replaces this process by `binary` with the same argv, to run `command`.
/// Throws std::runtime_error naming the command and the path when it cannot.
[[noreturn]] void exec_binary(const std::string& binary, const std::string& command, char** argv);

/// exec_binary() of the LibTorch binary, after choose_passive_openmp() (so
/// that a model command execs once, not twice).
[[noreturn]] void exec_torch_binary(const std::string& binary, const std::string& command, int argc, char** argv);

}  // namespace kmidi::cli
