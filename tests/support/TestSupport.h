#pragma once
// Helpers shared by the test suites: paths of the real data sets, scratch
// folders and running reference programs.

#include <string>
#include <vector>

namespace kmidi::test {

/// Absolute path of a file under the shared real data sets (../shared/data).
std::string shared_data(const std::string& relative);

/// Absolute path under the repository.
std::string source_path(const std::string& relative);

/// How long a scratch folder lives.
enum class ScratchLifetime {
  /// Until the running gtest test ends: removed when it passed, kept (its path
  /// printed) when it failed. Outside any test, as kProgram.
  kTest,
  /// Until the test program ends: removed when every test passed, else kept
  /// and printed. For data prepared once and shared by the tests of a process.
  kProgram,
};

/// The one way tests make folders: a fresh, empty <tmp>/kmidi_test_<pid>/<name>
/// (an old one of that name is emptied). Every folder it made is removed or
/// kept and printed as `lifetime` says; at exit a program whose tests passed
/// fails when it leaves any kmidi folder of its own in the temp dir.
std::string scratch_dir(const std::string& name, ScratchLifetime lifetime = ScratchLifetime::kTest);

/// The folder under which scratch_dir() makes its folders (<tmp>/kmidi_test_<pid>).
std::string scratch_root();

/// Quotes one argument for /bin/sh.
std::string shell_quote(const std::string& arg);

struct CommandResult {
  int exit_code = -1;
  std::string output;  ///< stdout
};

/// Runs argv through /bin/sh (arguments quoted), capturing stdout.
CommandResult run(const std::vector<std::string>& argv);

/// Runs a /bin/sh command line as written (redirections allowed), capturing stdout.
CommandResult run_shell(const std::string& command);
/// The Python interpreter for reference scripts (Debian's, with mido/numpy/torch).
std::string python();

}  // namespace kmidi::test
