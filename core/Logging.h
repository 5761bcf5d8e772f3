#pragma once
// Process-wide logging on spdlog. Rank-aware: in a distributed job only rank 0
// prints below warning level unless all ranks were asked for.

#include <string>

namespace kmidi::logging {

struct Options {
  std::string level = "info";  ///< trace, debug, info, warn, error, off
  int rank = 0;                ///< this process's rank (0 when not distributed)
  int world_size = 1;
  bool all_ranks = false;      ///< print info lines from every rank, prefixed by rank
};

/// Installs the default logger (stderr). Safe to call again, e.g. once the rank is known.
void init(const Options& options);

/// Adds a log file (appending). Only the main process writes one unless all_ranks,
/// in which case other ranks write `<path>.rank<N>`.
void add_file(const std::string& path);

/// The options last passed to init().
const Options& options();

/// True on rank 0: the process that prints progress and writes shared files.
bool is_main_process();

/// Whether stderr is an interactive terminal (progress bars instead of lines).
bool stderr_is_terminal();

}  // namespace kmidi::logging
