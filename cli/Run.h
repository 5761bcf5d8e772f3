#pragma once
// What both kmidi binaries' main() share: the global options, the subcommands
// in command_table() order, and each exception turned into one line on stderr
// and the exit code README documents.

#include <exception>
#include <functional>
#include <string>

#include "cli/Commands.h"

namespace kmidi::cli {

/// Prints "kmidi: <kind><first line of message>" to stderr and returns `code`.
int report_error(const char* kind, const std::string& message, int code);

/// Reports an exception type that only one binary knows (LibTorch's
/// c10::Error) and returns its exit code; -1 when `e` is not of that type.
using ExtraErrors = std::function<int(const std::exception&)>;

/// Parses argv and runs the subcommand; `registrars` holds one row per
/// command_table() name.
int run(int argc, char** argv, const Registrars& registrars, const ExtraErrors& extra_errors = {});

}  // namespace kmidi::cli
