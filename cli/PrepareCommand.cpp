// kmidi prepare --config configs/prepare_*.yaml: a MIDI corpus to token
// shards (<split>.h5), tokenizer.json and prepare_report.json; a config with
// `kind: spectocloud` prepares audio excerpts and target clouds instead
// (datasets/spectocloud/SpectocloudPrepare.h, cli/SpectocloudPrepareCommand.cpp;
// it needs LibTorch, so the front hands it to build/libexec/kmidi).

#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "cli/Commands.h"
#include "core/Config.h"
#include "datasets/corpus/Prepare.h"

namespace kmidi::cli {
void register_prepare(CLI::App& app, SpectocloudPrepare spectocloud) {
  auto args = std::make_shared<ConfigArgs>();
  auto* cmd = add_command(app, "prepare");
  add_config_args(*cmd, *args);
  cmd->callback([args, spectocloud] {
    // `kind` picks the preparation; a token corpus config has none.
    config::Document peek = config::Document::load_file(args->config);
    peek.apply_overrides(args->overrides);
    const std::optional<std::string> kind = peek.top_level_string("kind");
    if (kind) {
      if (*kind != "spectocloud") {
        throw config::ConfigError(args->config + ": kind: expected spectocloud (or no kind for a MIDI token corpus), got '" +
                                  *kind + "'");
      }
      spectocloud(*args);
      return;
    }
    corpus::PrepareConfig config = corpus::load_prepare_config(args->config, args->overrides);
    if (args->print_config) {
      std::printf("%s", config::to_yaml(config).c_str());
      return;
    }
    const corpus::PrepareReport report = corpus::run_prepare(config);
    std::printf("prepared %lld files into %s (run %s, vocab %d)\n", static_cast<long long>(report.files),
                report.output_dir.c_str(), report.run_id.c_str(), report.vocab_size);
    for (const corpus::SplitSummary& s : report.splits) {
      std::printf("  %-12s %7lld items %11lld tokens %9.0f s  %s\n", s.name.c_str(), static_cast<long long>(s.items),
                  static_cast<long long>(s.tokens), s.seconds, s.shard.c_str());
    }
    std::printf("  left out: %zu failed, %zu too short, %zu duplicates, %zu already in dedup_against; %lld notes outside "
                "the pitch ranges\n",
                report.failed.size(), report.too_short.size(), report.duplicates.size(),
                report.duplicates_elsewhere.size(),
                static_cast<long long>(report.encode.pitch_out_of_range + report.encode.drums_out_of_range));
    std::string by_kind;
    for (const auto& [kind, count] : report.left_out_counts()) {
      if (count > 0) by_kind += " " + kind + " " + std::to_string(count);
    }
    if (!by_kind.empty()) std::printf("  left out by reason:%s\n", by_kind.c_str());
    if (report.files_resumed > 0) {
      std::printf("  resumed: %lld files from an interrupted run, %lld parsed now\n",
                  static_cast<long long>(report.files_resumed), static_cast<long long>(report.files_parsed));
    }
    for (const corpus::LeftOutFile& f : report.failed) std::printf("  failed: %s: %s\n", f.path.c_str(), f.reason.c_str());
    std::printf("  report: %s/prepare_report.json\n", report.output_dir.c_str());
  });
}

}  // namespace kmidi::cli
