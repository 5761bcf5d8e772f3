// TEST CHILD: runs `kmidi export` (one config) or `kmidi export --all` on the
// export fixture's registry in its own process, so that tests can kill it at
// a KMIDI_FAULT fault point as a crash would. Usage:
//   export_child one CONFIG OUT      export_child all OUT CONFIG...
// Exit: 0 ok, 4 failed (the message on stderr).

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "export/ModelExport.h"
#include "export/NightlyExport.h"
#include "tests/export/ExportFixture.h"
#include "train/Job.h"

int main(int argc, char** argv) {
  using namespace kmidi;
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() >= 3 && args[0] == "one") {
      auto job = train::load_job_config(args[1], {}, test::export_fixture_registry());
      exporter::ExportOptions options;
      options.out_dir = args[2];
      exporter::export_model(*job, test::export_fixture_registry(), options);
      return 0;
    }
    if (args.size() >= 3 && args[0] == "all") {
      exporter::NightlyOptions options;
      options.out_dir = args[1];
      const auto result = exporter::export_all({args.begin() + 2, args.end()}, test::export_fixture_registry(), options);
      std::fputs(exporter::summary_table(result).c_str(), stdout);
      return result.all_ok() ? 0 : 4;
    }
    std::fprintf(stderr, "usage: export_child one CONFIG OUT | all OUT CONFIG...\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "export_child: %s\n", e.what());
    return 4;
  }
}
