// kmidi validate --config configs/prepare_*.yaml [--report FILE]: the dataset
// validation run. Prints a summary and fails with exit code 4 when the
// config's thresholds are exceeded or the data is empty. Writes nothing but
// the JSON report, and that only where --report says.

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
    std::string report;  ///< empty: no report file
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = add_command(app, "validate");
  add_config_args(*cmd, opt->config);
  cmd->add_option("--report", opt->report, "write the JSON report to this file (default: none)");
  cmd->callback([opt] {
    corpus::PrepareConfig config = corpus::load_prepare_config(opt->config.config, opt->config.overrides);
    if (opt->config.print_config) {
      std::printf("%s", config::to_yaml(config).c_str());
      return;
    }
    const corpus::ValidationReport report = corpus::run_validate(config, opt->config.config);
    if (!opt->report.empty()) files::write_atomic(opt->report, report.to_json());
    const std::string written = opt->report.empty() ? "not written (--report FILE writes one)" : opt->report;
    std::printf("%s  report: %s\n", report.summary().c_str(), written.c_str());
    std::fflush(stdout);
    if (!report.passed()) {
      throw CheckFailed("dataset validation failed: " + strings::join(report.violations, "; ") +
                        (opt->report.empty() ? std::string() : " (see " + opt->report + ")"));
    }
  });
}

}  // namespace kmidi::cli
