#include "core/Progress.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "core/Logging.h"
#include "core/Strings.h"

namespace kmidi {

Progress::Progress(std::string label, int64_t total, std::string unit, double log_interval_seconds)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      log_interval_(log_interval_seconds),
      enabled_(logging::is_main_process()),
      terminal_(logging::stderr_is_terminal()),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

double Progress::rate() const {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return s > 0 ? static_cast<double>(done_ - start_done_) / s : 0.0;
}

void Progress::update(int64_t done) {
  done_ = done;
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since >= (terminal_ ? 0.1 : log_interval_)) {
    last_draw_ = now;
    render(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) render(true);
}

void Progress::render(bool final_line) {
  const double r = rate();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  char rate_text[48];
  std::snprintf(rate_text, sizeof rate_text, "%.3g %s/s", r, unit_.c_str());
  std::string counts = std::to_string(done_) + (total_ > 0 ? "/" + std::to_string(total_) : "");
  std::string eta;
  if (total_ > 0 && r > 0 && !final_line) {
    eta = " ETA " + strings::format_duration(static_cast<double>(total_ - done_) / r);
  }
  const std::string tail = counts + " " + rate_text + " " + strings::format_duration(elapsed) + eta +
                           (postfix_.empty() ? "" : " " + postfix_);
  if (terminal_) {
    std::string bar;
    if (total_ > 0) {
      const int width = 24;
      const double frac = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
      const int filled = static_cast<int>(frac * width);
      bar = "[" + std::string(filled, '=') + (filled < width ? ">" : "") +
            std::string(width - filled - (filled < width ? 1 : 0), ' ') + "] " +
            std::to_string(static_cast<int>(frac * 100)) + "% ";
    }
    std::fprintf(stderr, "\r\033[K%s %s%s", label_.c_str(), bar.c_str(), tail.c_str());
    if (final_line) std::fputc('\n', stderr);
    std::fflush(stderr);
  } else {
    std::string pct;
    if (total_ > 0) pct = std::to_string(static_cast<int>(100.0 * done_ / total_)) + "% ";
    spdlog::info("{} {}{}{}", label_, pct, tail, final_line ? " (done)" : "");
  }
}

}  // namespace kmidi
