// kmidi: one binary, one subcommand per job. Library code throws; this file
// alone turns exceptions into one line on stderr and a documented exit code.

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "cli/Commands.h"
#include "core/Config.h"
#include "core/Errors.h"
#include "core/Logging.h"

namespace {

std::string first_line(const std::string& text) {
  const size_t nl = text.find('\n');
  return nl == std::string::npos ? text : text.substr(0, nl);
}

int report(const char* kind, const std::string& message, int code) {
  spdlog::default_logger()->flush();
  std::fprintf(stderr, "kmidi: %s%s\n", kind, first_line(message).c_str());
  return code;
}

/// The commands that run models, where OpenMP's wait policy matters.
bool runs_models(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    for (const char* command : {"train", "evaluate", "generate", "export", "humanize", "predict"}) {
      if (std::strcmp(argv[i], command) == 0) return true;
    }
  }
  return false;
}

/// libgomp reads OMP_WAIT_POLICY once, when LibTorch loads it (before main).
/// Its default lets idle OpenMP threads spin, which on a small machine starves
/// the data loader and halves training throughput (BENCHMARKS.md). Re-executing
/// once with the variable set is the only way to change it; a value the user
/// set is kept.
void ensure_passive_openmp(int argc, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || !runs_models(argc, argv)) return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::execv("/proc/self/exe", argv);
  // exec failed (no /proc): carry on with the default policy.
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kmidi;
  ensure_passive_openmp(argc, argv);
  CLI::App app{"kmidi: train, evaluate and export the music assistant's models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("kmidi ") + KMIDI_VERSION);
  logging::Options log_options;
  app.add_option("--log-level", log_options.level, "trace, debug, info, warn, error, off")
      ->capture_default_str();
  app.add_flag("--log-all-ranks", log_options.all_ranks, "print info lines from every rank, not only rank 0");

  // Subcommand callbacks run inside parse(); logging must be set up first.
  app.parse_complete_callback([&] { logging::init(log_options); });

  cli::register_version(app);
  cli::register_inspect(app);
  cli::register_train(app);
  cli::register_evaluate(app);
  cli::register_generate(app);
  cli::register_evaluate_generation(app);
  cli::register_onnx(app);
  cli::register_registry(app);
  cli::register_prepare(app);
  cli::register_fetch_data(app);
  cli::register_validate(app);
  cli::register_export(app);
  cli::register_humanize(app);
  cli::register_predict(app);

  try {
    logging::init(logging::Options{});
    app.parse(argc, argv);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  } catch (const config::ConfigError& e) {
    return report("config error: ", e.what(), kExitUsage);
  } catch (const UsageError& e) {
    return report("error: ", e.what(), kExitUsage);
  } catch (const DataError& e) {
    return report("data error: ", e.what(), kExitData);
  } catch (const CheckFailed& e) {
    return report("check failed: ", e.what(), kExitCheckFailed);
  } catch (const PeerFailure& e) {
    return report("distributed failure: ", e.what(), kExitPeerFailed);
  } catch (const Interrupted& e) {
    return report("interrupted: ", e.what(), kExitInterrupted);
  } catch (const c10::Error& e) {
    return report("internal error (LibTorch): ", e.what_without_backtrace(), kExitInternal);
  } catch (const std::exception& e) {
    return report("internal error: ", e.what(), kExitInternal);
  }
}
