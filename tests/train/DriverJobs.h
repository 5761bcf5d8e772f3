#pragma once
// Runs the training driver (today kmidi_distributed_driver; later `kmidi
// train`) as single-process references and as multi-process jobs, and
// compares the parameter files they write.

#include <map>
#include <string>
#include <vector>

#include "tests/train/ProcessHarness.h"

namespace kmidi::testing {

/// The driver binary and its real training data (MIDI files of pop909-sample).
std::string driver_path();
std::vector<std::string> driver_data_args();

/// How ranks learn their place: the variables torchrun or srun would set.
enum class EnvStyle { kTorchrun, kSlurm };

struct Job {
  std::string dir;  ///< logs and parameter files
  std::vector<ProcessResult> ranks;
  /// The parameter file rank `r` wrote (`--out` is dir/params.{rank}.pt).
  std::string params(int rank) const;
};

/// One process without launcher variables; writes dir/params.0.pt.
Job run_reference(const std::vector<std::string>& args, const std::string& dir, double timeout_s = 60);

/// `world` processes of the driver given the launcher variables of `style`
/// (rank 0 hosts the store on a free port); waits for all of them.
Job run_ranks(int world, const std::vector<std::string>& args, const std::string& dir, EnvStyle style,
              const std::map<std::string, std::string>& extra_env = {}, double timeout_s = 60);

/// The environment that torchrun (without its agent store) or srun gives `rank`.
std::map<std::string, std::string> launcher_env(EnvStyle style, int rank, int world, int port);

/// Largest absolute difference between two parameter files; fails the test
/// (and returns +inf) when their names or shapes differ.
double max_parameter_difference(const std::string& a, const std::string& b);

/// Values of one entry of a parameter file, flattened, as doubles.
std::vector<double> parameter_values(const std::string& file, const std::string& name);

/// The lines of `text` that start with `prefix`.
std::vector<std::string> lines_starting_with(const std::string& text, const std::string& prefix);

}  // namespace kmidi::testing
