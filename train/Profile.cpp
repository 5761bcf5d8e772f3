#include "train/Profile.h"

#include <ATen/record_function.h>
#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <unordered_map>

#include "core/Files.h"
#include "core/Strings.h"
#include "train/Trainer.h"

namespace kmidi::train::profile {
namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct OpAccumulator {
  int64_t calls = 0, self_ns = 0, total_ns = 0;
};

/// What the steps of one span (warm-up, or the counted steps) added up to.
struct Totals {
  int64_t steps = 0, step_ns = 0;
  int64_t phase_ns[kPhaseCount] = {};
  std::unordered_map<std::string, OpAccumulator> ops;
};

struct OpStart final : at::ObserverContext {
  int64_t start_ns = 0;
};

// Per-thread: only the training thread inside a step records operators.
thread_local bool tls_in_step = false;
thread_local std::vector<int64_t> tls_child_ns;  // time of the operators called by each open one

StepProfiler* g_active = nullptr;
Totals* g_totals = nullptr;  // the active profiler's totals of the current span

}  // namespace

struct StepProfiler::State {
  Totals warmup, counted;
  int64_t step_start_ns = -1;
  at::CallbackHandle callback = 0;

  Totals& current() { return warmup.steps == 0 ? warmup : counted; }
};

namespace {

std::unique_ptr<at::ObserverContext> on_op_start(const at::RecordFunction&) {
  if (!tls_in_step) return nullptr;
  auto ctx = std::make_unique<OpStart>();
  tls_child_ns.push_back(0);
  ctx->start_ns = now_ns();
  return ctx;
}

void on_op_end(const at::RecordFunction& fn, at::ObserverContext* context) {
  auto* start = static_cast<OpStart*>(context);
  if (start == nullptr || tls_child_ns.empty()) return;
  const int64_t total = now_ns() - start->start_ns;
  const int64_t children = tls_child_ns.back();
  tls_child_ns.pop_back();
  if (!tls_child_ns.empty()) tls_child_ns.back() += total;
  if (g_totals == nullptr) return;
  OpAccumulator& acc = g_totals->ops[fn.name()];
  ++acc.calls;
  acc.total_ns += total;
  acc.self_ns += total - children;
}

}  // namespace

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kData: return "data";
    case Phase::kForward: return "forward";
    case Phase::kBackward: return "backward";
    case Phase::kSync: return "sync";
    case Phase::kOptimizer: return "optimizer";
  }
  return "?";
}

StepProfiler::StepProfiler() : state_(std::make_unique<State>()) {
  if (g_active != nullptr) throw std::logic_error("StepProfiler: another profiler is active in this process");
  g_active = this;
  state_->callback = at::addGlobalCallback(
      at::RecordFunctionCallback(on_op_start, on_op_end)
          .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
}

StepProfiler::~StepProfiler() {
  at::removeCallback(state_->callback);
  tls_in_step = false;
  g_totals = nullptr;
  g_active = nullptr;
}

StepProfiler* active() { return g_active; }

void StepProfiler::begin_step() {
  tls_child_ns.clear();
  g_totals = &state_->current();
  state_->step_start_ns = now_ns();
  tls_in_step = true;
}

void StepProfiler::end_step() {
  tls_in_step = false;
  if (state_->step_start_ns < 0) return;
  Totals& t = state_->current();
  t.step_ns += now_ns() - state_->step_start_ns;
  ++t.steps;
  state_->step_start_ns = -1;
}

void StepProfiler::add_phase(Phase phase, double seconds) {
  state_->current().phase_ns[static_cast<int>(phase)] += static_cast<int64_t>(seconds * 1e9);
}

Report StepProfiler::report() const {
  const bool has_counted = state_->counted.steps > 0;
  const Totals& t = has_counted ? state_->counted : state_->warmup;
  Report r;
  r.steps = t.steps;
  r.warmup_steps = has_counted ? state_->warmup.steps : 0;
  r.step_s = static_cast<double>(t.step_ns) * 1e-9;
  double phases = 0;
  for (int p = 0; p < kPhaseCount; ++p) {
    r.phase_s[p] = static_cast<double>(t.phase_ns[p]) * 1e-9;
    phases += r.phase_s[p];
  }
  r.other_s = std::max(0.0, r.step_s - phases);
  for (const auto& [name, acc] : t.ops) {
    r.ops.push_back(OpTime{name, acc.calls, static_cast<double>(acc.self_ns) * 1e-9,
                           static_cast<double>(acc.total_ns) * 1e-9});
    r.op_self_s += r.ops.back().self_s;
  }
  std::sort(r.ops.begin(), r.ops.end(), [](const OpTime& a, const OpTime& b) {
    return a.self_s != b.self_s ? a.self_s > b.self_s : a.name < b.name;
  });
  return r;
}

PhaseScope::PhaseScope(Phase phase) : phase_(phase) {
  if (g_active != nullptr) start_ns_ = now_ns();
}

PhaseScope::~PhaseScope() {
  if (start_ns_ >= 0 && g_active != nullptr) {
    g_active->add_phase(phase_, static_cast<double>(now_ns() - start_ns_) * 1e-9);
  }
}

std::string Report::table(size_t top) const {
  const double n = std::max<int64_t>(1, steps);
  auto share = [&](double s) { return step_s > 0 ? 100.0 * s / step_s : 0.0; };
  std::string out = fmt::format("profile of {} step(s) ({} warm-up step(s) excluded), {:.1f} ms per step\n", steps,
                                warmup_steps, 1e3 * step_s / n);
  out += fmt::format("  {:<34} {:>10} {:>7}\n", "phase", "ms/step", "share");
  for (int p = 0; p < kPhaseCount; ++p) {
    out += fmt::format("  {:<34} {:>10.2f} {:>6.1f}%\n", phase_name(static_cast<Phase>(p)), 1e3 * phase_s[p] / n,
                       share(phase_s[p]));
  }
  out += fmt::format("  {:<34} {:>10.2f} {:>6.1f}%\n", "other", 1e3 * other_s / n, share(other_s));
  out += fmt::format("  {:<34} {:>10.2f} {:>6.1f}%\n", "step", 1e3 * step_s / n, 100.0);
  out += fmt::format("  operators by self time (all operators: {:.2f} ms/step, {:.1f}% of the step)\n",
                     1e3 * op_self_s / n, share(op_self_s));
  out += fmt::format("  {:<34} {:>10} {:>7} {:>10} {:>10}\n", "operator", "self ms", "share", "calls", "total ms");
  for (size_t i = 0; i < std::min(top, ops.size()); ++i) {
    const OpTime& op = ops[i];
    out += fmt::format("  {:<34} {:>10.2f} {:>6.1f}% {:>10.1f} {:>10.2f}\n", op.name, 1e3 * op.self_s / n,
                       share(op.self_s), static_cast<double>(op.calls) / n, 1e3 * op.total_s / n);
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string Report::json(size_t top) const {
  const double n = std::max<int64_t>(1, steps);
  nlohmann::ordered_json j;
  j["format"] = "kmidi.profile";
  j["format_version"] = 1;
  j["steps"] = steps;
  j["warmup_steps_excluded"] = warmup_steps;
  j["step_ms"] = 1e3 * step_s / n;
  nlohmann::ordered_json phases;
  for (int p = 0; p < kPhaseCount; ++p) phases[phase_name(static_cast<Phase>(p))] = 1e3 * phase_s[p] / n;
  phases["other"] = 1e3 * other_s / n;
  j["phase_ms_per_step"] = phases;
  j["operator_self_ms_per_step"] = 1e3 * op_self_s / n;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (size_t i = 0; i < std::min(top, ops.size()); ++i) {
    list.push_back({{"name", ops[i].name},
                    {"calls_per_step", static_cast<double>(ops[i].calls) / n},
                    {"self_ms_per_step", 1e3 * ops[i].self_s / n},
                    {"total_ms_per_step", 1e3 * ops[i].total_s / n}});
  }
  j["operators"] = list;
  return j.dump(2) + "\n";
}

namespace {

class ProfileObserver final : public TrainingObserver {
 public:
  void on_train_begin(Trainer&) override {
    if (active() == nullptr) profiler_ = std::make_unique<StepProfiler>();
  }

  void on_train_end(Trainer& t, const std::string&) override {
    if (!profiler_) return;
    const Report report = profiler_->report();
    profiler_.reset();
    if (report.steps == 0) return;
    for (const std::string& line : strings::split(report.table(), '\n')) spdlog::info("{}", line);
    if (t.context().is_main()) {
      const std::string path = t.options().run_dir + "/profile.json";
      files::write_atomic(path, report.json());
      spdlog::info("profile written to {}", path);
    }
  }

 private:
  std::unique_ptr<StepProfiler> profiler_;
};

}  // namespace

std::shared_ptr<TrainingObserver> make_profile_observer() { return std::make_shared<ProfileObserver>(); }

}  // namespace kmidi::train::profile
