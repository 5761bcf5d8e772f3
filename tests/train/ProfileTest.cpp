// train.profile (train/Profile.h) and token-budget batching through the
// trainer, on the Groove fixture task.

#include "train/Profile.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/Files.h"
#include "tests/train/GrooveFixture.h"
#include "tests/train/TrainTestUtil.h"
#include "train/Sampler.h"
#include "train/Trainer.h"

namespace kmidi::train {
namespace {

namespace fs = std::filesystem;

const profile::OpTime* find_op(const profile::Report& r, const std::string& name) {
  for (const auto& op : r.ops) {
    if (op.name == name) return &op;
  }
  return nullptr;
}

TEST(Profile, PhasesAndOperatorsOfTheTrainingThreadOnly) {
  const torch::Tensor a = torch::randn({256, 256}), b = torch::randn({256, 256});
  profile::StepProfiler profiler;
  EXPECT_EQ(profile::active(), &profiler);
  for (int step = 0; step < 3; ++step) {
    profiler.begin_step();
    {
      profile::PhaseScope data(profile::Phase::kData);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    {
      profile::PhaseScope forward(profile::Phase::kForward);
      for (int i = 0; i < 4; ++i) torch::mm(a, b);
      // Another thread's operators (a data loader's) are not the step's.
      std::thread other([&] { for (int i = 0; i < 7; ++i) torch::mm(a, b); });
      other.join();
    }
    profiler.end_step();
  }
  torch::mm(a, b);  // outside any step: not counted
  const profile::Report r = profiler.report();
  EXPECT_EQ(r.steps, 2);
  EXPECT_EQ(r.warmup_steps, 1);
  const profile::OpTime* mm = find_op(r, "aten::mm");
  ASSERT_NE(mm, nullptr) << r.table();
  EXPECT_EQ(mm->calls, 8) << "4 per counted step on the training thread";
  EXPECT_GE(r.phase_s[static_cast<int>(profile::Phase::kData)], 0.040);
  EXPECT_GT(r.phase_s[static_cast<int>(profile::Phase::kForward)], mm->total_s * 0.99);
  double phases = r.other_s;
  for (double s : r.phase_s) phases += s;
  EXPECT_NEAR(phases, r.step_s, 1e-6 * r.step_s);
  EXPECT_LE(r.op_self_s, r.step_s);
  const std::string table = r.table();
  for (const char* word : {"data", "forward", "backward", "optimizer", "other", "aten::mm", "self ms"}) {
    EXPECT_NE(table.find(word), std::string::npos) << word << " missing from\n" << table;
  }
}

TEST(Profile, SelfTimeExcludesNestedOperators) {
  // aten::matmul calls aten::mm: its self time is its total minus mm's.
  const torch::Tensor a = torch::randn({300, 300});
  profile::StepProfiler profiler;
  profiler.begin_step();
  for (int i = 0; i < 5; ++i) torch::matmul(a, a);
  profiler.end_step();
  const profile::Report r = profiler.report();
  const profile::OpTime* matmul = find_op(r, "aten::matmul");
  const profile::OpTime* mm = find_op(r, "aten::mm");
  ASSERT_TRUE(matmul && mm) << r.table();
  EXPECT_EQ(matmul->calls, 5);
  EXPECT_LE(matmul->total_s, r.step_s);
  EXPECT_GE(matmul->total_s, mm->total_s);
  EXPECT_LT(matmul->self_s, 0.5 * matmul->total_s) << "the product's time is mm's, not matmul's";
  EXPECT_NEAR(r.op_self_s, matmul->total_s, 0.05 * matmul->total_s) << "self times add up to the outer total";
}

TEST(Profile, TrainProfileWritesTheTableAndProfileJson) {
  auto task = test::make_groove_task(11, 0.1);
  TrainConfig c = test::small_config();
  c.max_steps = 6;
  c.profile = true;
  const std::string dir = test::scratch_dir("profile_run");
  auto context = test::cpu_context();  // installs kmidi's logger: the sink goes on that one
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(400);
  spdlog::default_logger()->sinks().push_back(sink);
  const auto level = spdlog::default_logger()->level();
  spdlog::default_logger()->set_level(spdlog::level::info);
  {
    TrainerOptions options;
    options.run_dir = dir;
    options.resume = "none";
    options.task_name = "groove_fixture";
    options.tensorboard = false;
    Trainer trainer(*task, c, options, context);
    trainer.fit();
  }
  spdlog::default_logger()->set_level(level);
  spdlog::default_logger()->sinks().pop_back();
  EXPECT_EQ(profile::active(), nullptr) << "the profiler ends with training";

  const auto j = nlohmann::json::parse(files::read_all(dir + "/profile.json"));
  EXPECT_EQ(j["format"], "kmidi.profile");
  EXPECT_EQ(j["steps"], 5);
  EXPECT_EQ(j["warmup_steps_excluded"], 1);
  double sum = 0;
  for (const char* phase : {"data", "forward", "backward", "sync", "optimizer", "other"}) {
    ASSERT_TRUE(j["phase_ms_per_step"].contains(phase)) << phase;
    EXPECT_GE(j["phase_ms_per_step"][phase].get<double>(), 0.0);
    sum += j["phase_ms_per_step"][phase].get<double>();
  }
  EXPECT_NEAR(sum, j["step_ms"].get<double>(), 1e-6 * j["step_ms"].get<double>());
  EXPECT_GT(j["phase_ms_per_step"]["forward"].get<double>(), 0.0);
  EXPECT_GT(j["phase_ms_per_step"]["backward"].get<double>(), 0.0);
  bool addmm = false, backward_node = false;
  for (const auto& op : j["operators"]) {
    const std::string name = op["name"];
    addmm = addmm || name == "aten::addmm";
    backward_node = backward_node || name.find("Backward") != std::string::npos;
    EXPECT_LE(op["self_ms_per_step"].get<double>(), op["total_ms_per_step"].get<double>() + 1e-9) << name;
  }
  EXPECT_TRUE(addmm) << j.dump(1);
  EXPECT_TRUE(backward_node) << j.dump(1);
  bool table = false, ops = false;
  for (const auto& line : sink->last_formatted()) {
    table = table || line.find("profile of 5 step(s) (1 warm-up step(s) excluded)") != std::string::npos;
    ops = ops || line.find("operators by self time") != std::string::npos;
  }
  EXPECT_TRUE(table && ops) << [&] {
    std::string all;
    for (const auto& line : sink->last_formatted()) all += line;
    return all;
  }();
}

/// The fixture's train split with a token budget over its items' costs,
/// recording every batch the loader asks for.
class BudgetDataset final : public data::Dataset {
 public:
  BudgetDataset(std::shared_ptr<const data::Dataset> inner, int64_t budget) : inner_(std::move(inner)), budget_(budget) {}
  size_t size() const override { return inner_->size(); }
  data::Batch get_batch(const std::vector<int64_t>& indices) const override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requested.push_back(indices);
    }
    return inner_->get_batch(indices);
  }
  bool has_targets() const override { return inner_->has_targets(); }
  std::string item_id(size_t index) const override { return inner_->item_id(index); }
  int64_t item_cost(size_t index) const override { return inner_->item_cost(index); }
  int64_t tokens_per_batch() const override { return budget_; }
  mutable std::vector<std::vector<int64_t>> requested;

 private:
  std::shared_ptr<const data::Dataset> inner_;
  int64_t budget_;
  mutable std::mutex mutex_;
};

class BudgetTask final : public Task {
 public:
  BudgetTask(std::unique_ptr<test::GrooveTask> inner, int64_t budget)
      : inner_(std::move(inner)), train_(std::make_shared<BudgetDataset>(inner_->dataset(Split::kTrain), budget)) {}
  torch::nn::Module& model() override { return inner_->model(); }
  std::shared_ptr<const data::Dataset> dataset(Split split) override {
    return split == Split::kTrain ? train_ : inner_->dataset(split);
  }
  ForwardOutput forward(const data::Batch& batch, bool training) override { return inner_->forward(batch, training); }
  MetricValues finalize(const MetricValues& sums, Split split) const override { return inner_->finalize(sums, split); }
  data::NamedTensors predict(const data::Batch& batch) override { return inner_->predict(batch); }
  std::string throughput_unit() const override { return inner_->throughput_unit(); }
  BudgetDataset& train_data() { return *train_; }

 private:
  std::unique_ptr<test::GrooveTask> inner_;
  std::shared_ptr<BudgetDataset> train_;
};

struct StopAtStep final : TrainingObserver {
  explicit StopAtStep(int64_t s) : step(s) {}
  void after_step(Trainer& t, const StepReport& r) override {
    if (r.step == step) t.request_stop("test: stop");
  }
  int64_t step;
};

TrainResult fit(Task& task, const TrainConfig& c, const std::string& dir, int64_t stop_at = 0) {
  TrainerOptions options;
  options.run_dir = dir;
  options.task_name = "groove_fixture";
  options.tensorboard = false;
  Trainer trainer(task, c, options, test::cpu_context());
  if (stop_at > 0) trainer.add_observer(std::make_shared<StopAtStep>(stop_at));
  return trainer.fit();
}

int64_t budget_for(const data::Dataset& d) {
  int64_t longest = 1;
  for (size_t i = 0; i < d.size(); ++i) longest = std::max(longest, d.item_cost(i));
  return 6 * longest;
}

TEST(TokenBudgetTraining, BatchesStayWithinTheBudgetAndCoverTheEpochOnce) {
  auto groove = test::make_groove_task(11, 0.0);
  const int64_t budget = budget_for(*groove->dataset(Split::kTrain));
  BudgetTask task(std::move(groove), budget);
  TrainConfig c = test::small_config();
  c.max_steps = 0;
  c.epochs = 1;
  c.eval_every = 0;
  c.prefetch = false;
  const TrainResult r = fit(task, c, test::scratch_dir("budget_epoch"));
  const auto& requested = task.train_data().requested;
  ASSERT_EQ(static_cast<int64_t>(requested.size()), r.step);
  std::vector<int64_t> costs;
  for (size_t i = 0; i < task.train_data().size(); ++i) costs.push_back(task.train_data().item_cost(i));
  std::map<int64_t, int> seen;
  for (const auto& batch : requested) {
    int64_t longest = 0;
    for (int64_t i : batch) {
      longest = std::max(longest, std::max<int64_t>(1, costs[static_cast<size_t>(i)]));
      ++seen[i];
    }
    EXPECT_LE(longest * static_cast<int64_t>(batch.size()), budget);
  }
  EXPECT_EQ(seen.size(), task.train_data().size());
  for (const auto& [item, count] : seen) EXPECT_EQ(count, 1) << "item " << item;
}

TEST(TokenBudgetTraining, ResumeIsBitExact) {
  TrainConfig c = test::small_config();
  c.max_steps = 0;
  c.epochs = 2;
  c.grad_accumulation = 2;
  c.eval_every = 0;
  const int64_t budget = budget_for(*test::make_groove_task(11, 0.2)->dataset(Split::kTrain));
  auto straight = std::make_unique<BudgetTask>(test::make_groove_task(11, 0.2), budget);
  const TrainResult full = fit(*straight, c, test::scratch_dir("budget_straight"));
  const std::string dir = test::scratch_dir("budget_resumed");
  auto first = std::make_unique<BudgetTask>(test::make_groove_task(11, 0.2), budget);
  const int64_t k = full.step / 2 + 1;  // inside the second epoch
  ASSERT_EQ(fit(*first, c, dir, k).step, k);
  // Another initialisation: the weights and the data position come from the checkpoint.
  auto second = std::make_unique<BudgetTask>(test::make_groove_task(999, 0.2), budget);
  const TrainResult rest = fit(*second, c, dir);
  EXPECT_EQ(rest.step, full.step);
  EXPECT_TRUE(test::bit_equal(test::model_state(straight->model()), test::model_state(second->model())));
}

}  // namespace
}  // namespace kmidi::train
