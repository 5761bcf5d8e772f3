// kmidi validate --config configs/prepare_*.yaml [--report FILE]: the dataset
// validation run. Prints a summary, writes the JSON report, and fails with
// exit code 4 when the config's thresholds are exceeded. Writes no data.

#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "cli/Commands.h"
#include "core/Config.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "core/Strings.h"
#include "datasets/corpus/Validate.h"

namespace kmidi::cli {

void register_validate(CLI::App& app) {
  struct Options {
    ConfigArgs config;
    std::string report = "validate_report.json";
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("validate", "check a corpus and its prepared shards before training on them");
  add_config_args(*cmd, opt->config);
  cmd->add_option("--report", opt->report, "where to write the JSON report")->capture_default_str();
  cmd->callback([opt] {
    corpus::PrepareConfig config = corpus::load_prepare_config(opt->config.config, opt->config.overrides);
    if (opt->config.print_config) {
      std::printf("%s", config::to_yaml(config).c_str());
      return;
    }
    const corpus::ValidationReport report = corpus::run_validate(config, opt->config.config);
    files::write_atomic(opt->report, report.to_json());
    std::printf("%s  report: %s\n", report.summary().c_str(), opt->report.c_str());
    std::fflush(stdout);
    if (!report.passed()) {
      throw CheckFailed("dataset validation failed: " + strings::join(report.violations, "; ") + " (see " +
                        opt->report + ")");
    }
  });
}

}  // namespace kmidi::cli
