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

/// A fresh, empty folder under the system temp dir, unique to this process.
std::string scratch_dir(const std::string& name);

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
