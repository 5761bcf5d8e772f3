#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <torch/version.h>

#include <cstdio>

#include "cli/Commands.h"

namespace kmidi::cli {

void register_version(CLI::App& app) {
  auto* cmd = add_command(app, "version");
  cmd->callback([] {
    spdlog::debug("version requested");
    std::printf("kmidi %s\nLibTorch %s\n", KMIDI_VERSION, TORCH_VERSION);
  });
}

}  // namespace kmidi::cli
