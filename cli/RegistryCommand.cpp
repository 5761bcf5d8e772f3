#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/Commands.h"
#include "export/registry/Registry.h"

namespace kmidi::cli {

void register_registry(CLI::App& app) {
  auto* cmd = add_command(app, "registry");
  cmd->require_subcommand(1);
  auto* validate = cmd->add_subcommand(
      "validate", "validate a manifest against export/schema/registry.schema.json, check ids, files and sha256 "
                  "(exit 4 when invalid)");
  auto path = std::make_shared<std::string>();
  validate->add_option("file", *path, "the registry.json to validate")->required();
  validate->callback([path] {
    const auto entries = registry::read_registry(*path);
    std::printf("%s: valid, %zu model(s)\n", path->c_str(), entries.size());
  });
}

}  // namespace kmidi::cli
