// kmidi prepare with a `kind: spectocloud` config: audio excerpts and target
// clouds (datasets/spectocloud/SpectocloudPrepare.h). It needs LibTorch (mel
// spectrograms), so it lives in build/libexec/kmidi; cli/PrepareCommand.cpp
// reads the config's kind and calls this.

#include <cstdio>

#include "cli/Commands.h"
#include "core/Config.h"
#include "datasets/spectocloud/SpectocloudPrepare.h"

namespace kmidi::cli {

void prepare_spectocloud(const ConfigArgs& args) {
  spectocloud::SpectocloudPrepareConfig config =
      spectocloud::load_spectocloud_prepare_config(args.config, args.overrides);
  if (args.print_config) {
    std::printf("%s", config::to_yaml(config).c_str());
    return;
  }
  const spectocloud::SpectocloudPrepareReport report = spectocloud::run_spectocloud_prepare(config);
  std::printf("prepared %lld excerpts from %lld files into %s (%lld rendered now, %lld quiet excerpts left out)\n",
              static_cast<long long>(report.items), static_cast<long long>(report.files), report.file.c_str(),
              static_cast<long long>(report.rendered), static_cast<long long>(report.quiet_excerpts));
  for (const spectocloud::SpectocloudSplitSummary& s : report.splits) {
    std::printf("  %-12s %7lld items %5lld songs\n", s.name.c_str(), static_cast<long long>(s.items),
                static_cast<long long>(s.songs));
  }
  for (const data::SkippedItem& s : report.skipped) std::printf("  skipped: %s: %s\n", s.path.c_str(), s.reason.c_str());
  std::printf("  report: %s.report.json\n", report.file.c_str());
}

}  // namespace kmidi::cli
