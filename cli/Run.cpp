#include "cli/Run.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <stdexcept>

#include "core/Config.h"
#include "core/Errors.h"
#include "core/Logging.h"

namespace kmidi::cli {
namespace {

std::string first_line(const std::string& text) {
  const size_t nl = text.find('\n');
  return nl == std::string::npos ? text : text.substr(0, nl);
}

void add_commands(CLI::App& app, const Registrars& registrars) {
  for (const CommandInfo& info : command_table()) {
    const auto it = registrars.find(info.name);
    if (it == registrars.end()) throw std::logic_error(std::string("no registrar for kmidi ") + info.name);
    it->second(app);
  }
}

}  // namespace

int report_error(const char* kind, const std::string& message, int code) {
  spdlog::default_logger()->flush();
  std::fprintf(stderr, "kmidi: %s%s\n", kind, first_line(message).c_str());
  return code;
}

int run(int argc, char** argv, const Registrars& registrars, const ExtraErrors& extra_errors) {
  CLI::App app{"kmidi: train, evaluate and export the music assistant's models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("kmidi ") + KMIDI_VERSION);
  logging::Options log_options;
  app.add_option("--log-level", log_options.level, "trace, debug, info, warn, error, off")->capture_default_str();
  app.add_flag("--log-all-ranks", log_options.all_ranks, "print info lines from every rank, not only rank 0");

  // Subcommand callbacks run inside parse(); logging must be set up first.
  app.parse_complete_callback([&] { logging::init(log_options); });

  try {
    add_commands(app, registrars);
    logging::init(logging::Options{});
    app.parse(argc, argv);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  } catch (const config::ConfigError& e) {
    return report_error("config error: ", e.what(), kExitUsage);
  } catch (const UsageError& e) {
    return report_error("error: ", e.what(), kExitUsage);
  } catch (const DataError& e) {
    return report_error("data error: ", e.what(), kExitData);
  } catch (const CheckFailed& e) {
    return report_error("check failed: ", e.what(), kExitCheckFailed);
  } catch (const PeerFailure& e) {
    return report_error("distributed failure: ", e.what(), kExitPeerFailed);
  } catch (const Interrupted& e) {
    return report_error("interrupted: ", e.what(), kExitInterrupted);
  } catch (const std::exception& e) {
    const int code = extra_errors ? extra_errors(e) : -1;
    return code >= 0 ? code : report_error("internal error: ", e.what(), kExitInternal);
  }
}

}  // namespace kmidi::cli
