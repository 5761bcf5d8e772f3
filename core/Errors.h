#pragma once
// Error types shared by every library. Library code throws; only main() decides
// how to exit. Each type maps to one documented exit code (see README).

#include <stdexcept>
#include <string>

namespace kmidi {

/// Process exit codes. Stable: scripts and the nightly pipeline test for them.
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,     ///< a bug or an unexpected library failure
  kExitUsage = 2,        ///< bad command line or configuration
  kExitData = 3,         ///< unreadable or malformed input data, I/O failure
  kExitCheckFailed = 4,  ///< a check ran and failed: validation thresholds, export parity
  kExitPeerFailed = 5,   ///< another process of a distributed job died, hung or failed
  kExitInterrupted = 130,
};

/// A caller mistake: bad command line, unknown subcommand, inconsistent options.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Input data that cannot be used: corrupt MIDI, missing audio, malformed labels.
/// The message names the file (and offset or line where known).
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A check that ran to completion and said no: dataset validation thresholds,
/// ONNX parity, registry schema.
class CheckFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Another process of a distributed job died, hung, failed or could not be
/// reached within the configured timeout. The message names the rank(s).
class PeerFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Raised when SIGINT/SIGTERM asked the process to stop after saving its state.
class Interrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace kmidi
