#include "core/Logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <mutex>

#include "core/Errors.h"

namespace kmidi::logging {
namespace {

std::mutex g_mutex;
Options g_options;
std::shared_ptr<spdlog::sinks::sink> g_console;

spdlog::level::level_enum parse_level(const std::string& name) {
  const auto level = spdlog::level::from_str(name);
  // from_str maps unknown names to off; only "off" itself may mean off.
  if (level == spdlog::level::off && name != "off") {
    throw UsageError("unknown log level '" + name + "'; expected trace, debug, info, warn, error or off");
  }
  return level;
}

std::string pattern(const Options& o) {
  if (o.world_size > 1) return "[%H:%M:%S] [rank " + std::to_string(o.rank) + "] [%^%l%$] %v";
  return "[%H:%M:%S] [%^%l%$] %v";
}

}  // namespace

void init(const Options& options) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const auto level = parse_level(options.level);
  g_options = options;
  if (!g_console) g_console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  const bool quiet_rank = options.rank != 0 && !options.all_ranks;
  g_console->set_level(quiet_rank ? std::max(level, spdlog::level::warn) : level);
  g_console->set_pattern(pattern(options));
  auto logger = spdlog::default_logger();
  if (!logger || logger->name() != "kmidi") {
    logger = std::make_shared<spdlog::logger>("kmidi", g_console);
    spdlog::set_default_logger(logger);
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
}

void add_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_options.rank != 0 && !g_options.all_ranks) return;
  const std::string file = g_options.rank == 0 ? path : path + ".rank" + std::to_string(g_options.rank);
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, /*truncate=*/false);
  sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  sink->set_level(spdlog::default_logger()->level());
  spdlog::default_logger()->sinks().push_back(sink);
}

const Options& options() { return g_options; }

bool is_main_process() { return g_options.rank == 0; }

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

}  // namespace kmidi::logging
