#include "train/Trainer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <tuple>
#include <sstream>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/TorchCompat.h"
#include "tests/train/EventFileReader.h"
#include "tests/train/GrooveFixture.h"
#include "tests/train/TrainTestUtil.h"
#include "train/Checkpoint.h"
#include "train/Ema.h"
#include "train/Job.h"
#include "train/Schedule.h"

namespace kmidi::train {
namespace {

namespace fs = std::filesystem;
using test::GrooveTask;

/// Ends training after `step` as an observer may (e.g. a time budget).
struct StopAt final : TrainingObserver {
  explicit StopAt(int64_t s) : step(s) {}
  void after_step(Trainer& t, const StepReport& r) override {
    if (r.step == step) t.request_stop("test: stop at step " + std::to_string(step));
  }
  int64_t step;
};

/// Copies the model's tensors after chosen steps.
struct Snapshots final : TrainingObserver {
  std::map<int64_t, NamedTensorList> at;
  std::vector<int64_t> steps;
  void after_step(Trainer& t, const StepReport& r) override {
    if (std::find(steps.begin(), steps.end(), r.step) != steps.end()) at[r.step] = test::model_state(t.task().model());
  }
};

struct Outcome {
  TrainResult result;
  TrainState state;
  NamedTensorList model, optimizer, ema;
};

Outcome run(GrooveTask& task, const TrainConfig& config, const std::string& dir, const std::string& resume = "auto",
            std::vector<std::shared_ptr<TrainingObserver>> observers = {}) {
  TrainerOptions options;
  options.run_dir = dir;
  options.resume = resume;
  options.task_name = "groove_fixture";
  options.config_yaml = "test config\n";
  Trainer trainer(task, config, options, test::cpu_context());
  for (auto& o : observers) trainer.add_observer(o);
  Outcome out;
  out.result = trainer.fit();
  out.state = trainer.state();
  out.model = test::model_state(task.model());
  out.optimizer = test::clone_all(trainer.optimizer().state());
  if (trainer.ema()) out.ema = test::clone_all(trainer.ema()->state());
  return out;
}

std::vector<nlohmann::json> metric_rows(const std::string& dir) {
  std::istringstream in(files::read_all(dir + "/metrics.jsonl"));
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) {
    auto row = nlohmann::json::parse(line);
    if (row["split"] != "health") rows.push_back(std::move(row));  // the run-health row is no metric row
  }
  return rows;
}

/// Mean squared error of `net` on the fixture's validation split, computed
/// here in double precision, independently of the trainer's evaluation.
double validation_mse(GrooveTask& task) {
  torch::NoGradGuard no_grad;
  const auto& ds = static_cast<const test::GrooveDataset&>(*task.dataset(Split::kValidation));
  std::vector<int64_t> all(ds.size());
  std::iota(all.begin(), all.end(), int64_t{0});
  const data::Batch b = ds.get_batch(all);
  task.model().eval();
  const torch::Tensor pred = task.net()->forward(b.inputs.at("features")).to(torch::kDouble);
  task.model().train();
  double sum = 0;
  for (size_t i = 0; i < ds.size(); ++i) {
    const double err = pred[static_cast<int64_t>(i)].item<double>() - std::log(ds.rows()[i].duration);
    sum += err * err;
  }
  return sum / static_cast<double>(ds.size());
}

double max_abs_difference(const NamedTensorList& a, const NamedTensorList& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, (a[i].second.to(torch::kDouble) - b[i].second.to(torch::kDouble)).abs().max().item<double>());
  }
  return worst;
}

TEST(Trainer, GradientAccumulationEqualsOneLargeBatch) {
  std::vector<NamedTensorList> finals;
  for (int64_t accumulation : {1, 2, 4}) {
    auto task = test::make_groove_task(11, /*dropout=*/0.0);
    TrainConfig c = test::small_config();
    c.max_steps = 12;
    c.eval_every = 0;
    c.grad_accumulation = accumulation;
    // Equality to 1e-6 holds in fp32 only: under bf16 autocast each
    // micro-batch's weight gradient comes out of a bf16 matmul, rounded on its own.
    c.precision = "fp32";
    finals.push_back(run(*task, c, test::scratch_dir("accum" + std::to_string(accumulation)), "none").model);
  }
  EXPECT_GT(max_abs_difference(finals[0], test::model_state(test::make_groove_task(11, 0.0)->model())), 1e-3)
      << "training moved the weights";
  EXPECT_LT(max_abs_difference(finals[0], finals[1]), 1e-6);
  EXPECT_LT(max_abs_difference(finals[0], finals[2]), 1e-6);
}

/// The step to stop at, and train.precision: resuming is bit-exact within either precision.
class ExactResume : public ::testing::TestWithParam<std::tuple<int64_t, std::string>> {};

TEST_P(ExactResume, KStepsResumeThenRestEqualsStraightRun) {
  // Dropout on, EMA on, accumulation, evaluation and checkpoints in between;
  // 35 steps cross the 29-step epoch boundary (ceil(897 / 32)).
  TrainConfig c = test::small_config();
  c.max_steps = 35;
  c.grad_accumulation = 2;
  c.eval_every = 5;
  c.checkpoint_every = 4;
  c.log_every = 3;
  c.ema.decay = 0.9;
  c.early_stopping.patience = 50;
  const auto& [k, precision] = GetParam();
  c.precision = precision;

  auto straight_task = test::make_groove_task(11, 0.2);
  const std::string straight_dir = test::scratch_dir("straight" + std::to_string(k) + precision);
  const Outcome straight = run(*straight_task, c, straight_dir);

  const std::string dir = test::scratch_dir("resumed" + std::to_string(k) + precision);
  auto first = test::make_groove_task(11, 0.2);
  const Outcome part = run(*first, c, dir, "auto", {std::make_shared<StopAt>(k)});
  ASSERT_EQ(part.result.step, k);
  EXPECT_NE(part.result.reason.find("test: stop at step"), std::string::npos);
  // A different initialisation: everything must come from the checkpoint.
  auto second = test::make_groove_task(999, 0.2);
  const Outcome resumed = run(*second, c, dir, "auto");

  EXPECT_EQ(resumed.result.step, 35);
  EXPECT_TRUE(test::bit_equal(straight.model, resumed.model));
  EXPECT_TRUE(test::bit_equal(straight.optimizer, resumed.optimizer));
  EXPECT_TRUE(test::bit_equal(straight.ema, resumed.ema));
  EXPECT_EQ(straight.state.position.epoch, resumed.state.position.epoch);
  EXPECT_EQ(straight.state.position.step_in_epoch, resumed.state.position.step_in_epoch);
  EXPECT_EQ(straight.state.early_stopping.best, resumed.state.early_stopping.best);
  EXPECT_EQ(straight.state.early_stopping.best_step, resumed.state.early_stopping.best_step);
  EXPECT_EQ(straight.state.early_stopping.bad_evaluations, resumed.state.early_stopping.bad_evaluations);

  // The metric rows after the resume point repeat the straight run's.
  std::map<std::pair<int64_t, std::string>, double> losses;
  for (const auto& row : metric_rows(straight_dir)) {
    losses[{row["step"].get<int64_t>(), row["split"].get<std::string>()}] = row["loss"].get<double>();
  }
  int compared = 0;
  for (const auto& row : metric_rows(dir)) {
    const auto key = std::make_pair(row["step"].get<int64_t>(), row["split"].get<std::string>());
    ASSERT_TRUE(losses.count(key)) << "step " << key.first << " " << key.second;
    // A train row averages the log_every steps before it: rows whose window
    // straddles the resume point cover fewer steps in the resumed run.
    const bool straddles = key.second == "train" && key.first > k && key.first - c.log_every < k;
    if (!straddles) {
      EXPECT_EQ(row["loss"].get<double>(), losses[key]) << "step " << key.first << " " << key.second;
      ++compared;
    }
  }
  EXPECT_GT(compared, 12);

  // Each session has its own event file; the resumed one tells TensorBoard to
  // drop the first session's events past step k.
  std::vector<std::string> event_files;
  for (const auto& e : fs::directory_iterator(dir + "/tensorboard")) event_files.push_back(e.path().string());
  ASSERT_EQ(event_files.size(), 2u);
  bool restart_marked = false;
  for (const auto& file : event_files) {
    for (const auto& e : test::read_event_file(file)) {
      if (e.has_session_log() && e.step() == k + 1 &&
          e.session_log().status() == kmidi_test::tensorboard::SessionLog::START) {
        restart_marked = true;
      }
    }
  }
  EXPECT_TRUE(restart_marked);
}

// Stop mid-epoch, and exactly at the end of the first epoch (29 steps).
INSTANTIATE_TEST_SUITE_P(Trainer, ExactResume,
                         ::testing::Combine(::testing::Values(int64_t{13}, int64_t{29}), ::testing::Values("fp32", "bf16")),
                         [](const auto& info) {
                           return std::get<1>(info.param) + "_stop" + std::to_string(std::get<0>(info.param));
                         });

TEST(Trainer, MetricsJsonlAndTensorBoardAgree) {
  auto task = test::make_groove_task(11, 0.1);
  TrainConfig c = test::small_config();  // 20 steps, log every 5, validate every 10
  c.precision = "fp32";  // the validation loss is checked against an evaluation in double, to 1e-5
  const std::string dir = test::scratch_dir("metrics");
  run(*task, c, dir, "none");

  const LrSchedule schedule(c.schedule, c.optimizer.lr, c.max_steps);
  std::map<std::string, std::map<int64_t, double>> expected;  // tag -> step -> value
  std::vector<int64_t> train_steps, validation_steps;
  double last_validation_loss = 0;
  for (const auto& row : metric_rows(dir)) {
    const int64_t step = row["step"];
    const std::string split = row["split"];
    for (const char* key : {"loss", "mae", "rmse"}) ASSERT_TRUE(row.contains(key)) << key;
    EXPECT_NEAR(row["rmse"].get<double>(), std::sqrt(row["loss"].get<double>()), 1e-9);
    if (split == "train") {
      train_steps.push_back(step);
      EXPECT_DOUBLE_EQ(row["lr"].get<double>(), schedule.lr(step - 1));
      EXPECT_GT(row["throughput"].get<double>(), 0.0);
      EXPECT_EQ(row["throughput_unit"], "samples");
      EXPECT_GT(row["grad_norm"].get<double>(), 0.0);
      for (const char* key : {"loss", "mae", "lr", "grad_norm"}) {
        expected[std::string("train/") + key][step] = row[key].get<double>();
      }
    } else {
      EXPECT_EQ(split, "validation");
      validation_steps.push_back(step);
      EXPECT_EQ(row["items"], 124);
      expected["validation/loss"][step] = row["loss"].get<double>();
      last_validation_loss = row["loss"].get<double>();
    }
  }
  EXPECT_EQ(train_steps, (std::vector<int64_t>{5, 10, 15, 20}));
  EXPECT_EQ(validation_steps, (std::vector<int64_t>{10, 20}));
  // The trainer's validation loss equals an independent computation on the final weights.
  EXPECT_NEAR(last_validation_loss, validation_mse(*task), 1e-5 * last_validation_loss);

  std::vector<fs::path> event_files;
  for (const auto& e : fs::directory_iterator(dir + "/tensorboard")) event_files.push_back(e.path());
  ASSERT_EQ(event_files.size(), 1u);
  const auto events = test::read_event_file(event_files[0].string());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  std::map<std::string, std::map<int64_t, float>> logged;
  for (const auto& e : events) {
    for (const auto& v : e.summary().value()) logged[v.tag()][e.step()] = v.simple_value();
  }
  for (const auto& [tag, by_step] : expected) {
    ASSERT_TRUE(logged.count(tag)) << tag;
    EXPECT_EQ(logged[tag].size(), by_step.size()) << tag;
    for (const auto& [step, value] : by_step) EXPECT_EQ(logged[tag][step], static_cast<float>(value)) << tag << " @" << step;
  }
  EXPECT_TRUE(logged.count("train/samples_per_s"));
}

TEST(Trainer, KeepsLastKCheckpointsAndTheBest) {
  auto task = test::make_groove_task(11, 0.1);
  TrainConfig c = test::small_config();
  c.max_steps = 30;
  c.checkpoint_every = 5;
  c.eval_every = 5;
  c.keep_last_k = 2;
  c.optimizer.lr = 2e-2;  // large enough for validation loss to move up and down
  // The best weights are checked against an evaluation in double below (1e-5):
  // the trainer's evaluation must be fp32 too, not bf16 autocast (auto on a CPU with native bf16).
  c.precision = "fp32";
  const std::string dir = test::scratch_dir("retention");
  const Outcome o = run(*task, c, dir, "none");

  CheckpointStore store(dir + "/checkpoints", 2);
  const auto list = store.list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].first, 25);
  EXPECT_EQ(list[1].first, 30);
  int64_t best_step = -1;
  double best_loss = 1e300;
  for (const auto& row : metric_rows(dir)) {
    if (row["split"] == "validation" && row["loss"].get<double>() < best_loss) {
      best_loss = row["loss"];
      best_step = row["step"];
    }
  }
  ASSERT_EQ(o.result.best_checkpoint, store.best_path());
  EXPECT_EQ(o.result.best.best_step, best_step);
  CheckpointFile best(store.best_path());
  EXPECT_EQ(nlohmann::json::parse(best.bytes(checkpoint_section::kMeta))["step"], best_step);
  // The best checkpoint's weights reproduce the best validation loss.
  auto fresh = test::make_groove_task(1, 0.1);
  NamedTensorList target;
  for (const auto& item : fresh->model().named_parameters(true)) target.emplace_back(item.key(), item.value());
  for (const auto& item : fresh->model().named_buffers(true)) target.emplace_back(item.key(), item.value());
  load_named_tensors(best.tensors(checkpoint_section::kModel), target, "best");
  EXPECT_NEAR(validation_mse(*fresh), best_loss, 1e-5 * best_loss);
  EXPECT_EQ(files::read_all(dir + "/checkpoints/features.json"), fresh->artifacts().at("features.json"));
  EXPECT_EQ(best.artifacts().at("features.json"), fresh->artifacts().at("features.json"));
}

TEST(Trainer, NonFiniteLossStopsWithStepAndValues) {
  auto task = test::make_groove_task(11, 0.1);
  task->nan_at_training_forward = 5;
  TrainConfig c = test::small_config();
  try {
    run(*task, c, test::scratch_dir("nan_stop"), "none");
    FAIL() << "a NaN loss must stop the run";
  } catch (const CheckFailed& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("non-finite values at step 5 (epoch 0): loss_sum nan"), std::string::npos) << what;
    EXPECT_NE(what.find("grad_norm nan"), std::string::npos) << what;
    EXPECT_NE(what.find("parameters with non-finite gradients: fc1.weight, fc1.bias, norm.weight"), std::string::npos) << what;
    EXPECT_NE(what.find("train.nonfinite is 'stop'"), std::string::npos) << what;
  }
}

TEST(Trainer, NonFiniteLossSkipsTheStepWhenConfigured) {
  auto task = test::make_groove_task(11, 0.1);
  task->nan_at_training_forward = 5;
  TrainConfig c = test::small_config();
  c.nonfinite = "skip_step";
  auto snapshots = std::make_shared<Snapshots>();
  snapshots->steps = {4, 5, 6};
  // Creating a context installs kmidi's logger; the sink must go on that one.
  test::cpu_context();
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(200);
  spdlog::default_logger()->sinks().push_back(sink);
  const std::string dir = test::scratch_dir("nan_skip");
  const Outcome o = run(*task, c, dir, "none", {snapshots});
  spdlog::default_logger()->sinks().pop_back();

  EXPECT_EQ(o.result.step, 20);
  EXPECT_EQ(o.state.skipped_steps, 1);
  EXPECT_TRUE(test::bit_equal(snapshots->at[4], snapshots->at[5])) << "the skipped step changed no weight";
  EXPECT_FALSE(test::bit_equal(snapshots->at[5], snapshots->at[6]));
  bool warned = false;
  for (const auto& line : sink->last_formatted()) {
    if (line.find("non-finite values at step 5") != std::string::npos && line.find("skipping the update") != std::string::npos) {
      warned = true;
    }
  }
  EXPECT_TRUE(warned);
  for (const auto& row : metric_rows(dir)) {
    if (row["split"] == "train") EXPECT_EQ(row["skipped_steps"], row["step"].get<int64_t>() >= 5 ? 1 : 0);
  }
}

TEST(Trainer, EarlyStoppingStopsAtTheExpectedStep) {
  TrainConfig c = test::small_config();
  c.max_steps = 100;
  c.eval_every = 5;
  c.early_stopping.patience = 2;
  c.early_stopping.min_delta = 1e9;  // nothing after the first evaluation counts as an improvement
  {
    auto task = test::make_groove_task(11, 0.1);
    const Outcome o = run(*task, c, test::scratch_dir("early1"), "none");
    // Evaluations at 5 (first best), 10 (1 without improvement), 15 (2: stop).
    EXPECT_EQ(o.result.step, 15);
    EXPECT_NE(o.result.reason.find("early stopping: no improvement of validation loss"), std::string::npos) << o.result.reason;
    EXPECT_EQ(o.result.best.best_step, 5);
  }
  {
    c.early_stopping.min_steps = 32;
    auto task = test::make_groove_task(11, 0.1);
    const Outcome o = run(*task, c, test::scratch_dir("early2"), "none");
    EXPECT_EQ(o.result.step, 35);  // the first evaluation at or after step 32
  }
}

TEST(Trainer, EmaWeightsAreEvaluated) {
  auto task = test::make_groove_task(11, 0.1);
  TrainConfig c = test::small_config();
  c.max_steps = 10;
  c.ema.decay = 0.8;
  c.precision = "fp32";  // the logged loss is checked against an evaluation in double, to 1e-5
  const std::string dir = test::scratch_dir("ema");
  const Outcome o = run(*task, c, dir, "none");
  double logged = 0;
  for (const auto& row : metric_rows(dir)) {
    if (row["split"] == "validation") logged = row["loss"];
  }
  const double raw = validation_mse(*task);
  {
    std::vector<NamedParameter> params;
    for (const auto& item : task->model().named_parameters(true)) params.push_back({item.key(), item.value(), true});
    Ema ema(params, 0.8);
    ema.load_state(o.ema);
    Ema::Scope averaged(ema);
    EXPECT_NEAR(logged, validation_mse(*task), 1e-5 * logged);
  }
  EXPECT_GT(std::abs(logged - raw), 1e-4 * raw) << "the averaged weights differ from the trained ones";
}

TEST(Trainer, CpuAutocastWhenAskedOrWhenAutoFindsNativeBf16) {
  std::map<std::string, double> losses;
  const std::string auto_means = cpu_native_bf16().empty() ? "fp32" : "bf16";
  for (const std::string precision : {"auto", "fp32", "bf16"}) {
    auto task = test::make_groove_task(11, 0.0);
    TrainConfig c = test::small_config();
    c.max_steps = 3;
    c.precision = precision;
    const Outcome o = run(*task, c, test::scratch_dir("precision_" + precision), "none");
    EXPECT_EQ(task->autocast_seen, (precision == "auto" ? auto_means : precision) == "bf16") << precision;
    losses[precision] = o.result.last_validation->metrics.at("loss");
    EXPECT_TRUE(std::isfinite(losses[precision])) << precision;
  }
  EXPECT_EQ(losses["auto"], losses[auto_means]);
  // bf16 matmuls round differently, but train the same model.
  EXPECT_NE(losses["bf16"], losses["fp32"]);
  EXPECT_NEAR(losses["bf16"], losses["fp32"], 0.05 * losses["fp32"]);
}

// Whether this LibTorch's CPU autocast runs layer_norm on a bf16 input with
// fp32 weights: 1.13's leaves layer_norm uncast and fails, 2.x casts it to fp32.
bool cpu_autocast_casts_layer_norm() {
  torch::NoGradGuard no_grad;
  compat::set_autocast_enabled(c10::DeviceType::CPU, true);
  compat::set_autocast_dtype(c10::DeviceType::CPU, torch::kBFloat16);
  bool cast = true;
  try {
    torch::layer_norm(torch::ones({2, 4}, torch::kBFloat16), {4}, torch::ones({4}), torch::zeros({4}));
  } catch (const c10::Error&) {
    cast = false;
  }
  compat::set_autocast_enabled(c10::DeviceType::CPU, false);
  return cast;
}

TEST(Trainer, Bf16OnCpuFailsClearlyWhereLibTorchCannotAutocast) {
  // Normalisation left in bf16: a bf16 input meets fp32 weights in layer_norm.
  auto task = test::make_groove_task(11, 0.0);
  task->norm_in_fp32 = false;
  TrainConfig c = test::small_config();
  c.precision = "bf16";
  if (cpu_autocast_casts_layer_norm()) {
    // LibTorch casts it itself, so the same model trains.
    const Outcome o = run(*task, c, test::scratch_dir("precision_error"), "none");
    EXPECT_TRUE(task->autocast_seen);
    EXPECT_TRUE(std::isfinite(o.result.last_validation->metrics.at("loss")));
    return;
  }
  try {
    run(*task, c, test::scratch_dir("precision_error"), "none");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("bf16 autocast on CPU failed in the task's forward"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("train.precision: fp32"), std::string::npos) << e.what();
  }
}

TEST(Trainer, ResumeErrors) {
  const std::string dir = test::scratch_dir("resume_errors");
  TrainConfig c = test::small_config();
  c.max_steps = 4;
  c.checkpoint_every = 2;
  {
    auto task = test::make_groove_task(11, 0.1);
    run(*task, c, dir, "none");
  }
  auto task = test::make_groove_task(11, 0.1);
  try {
    run(*task, c, dir, "none");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("run.resume is 'none' but"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("already holds checkpoints"), std::string::npos) << e.what();
  }
  {
    TrainerOptions options;
    options.run_dir = dir;
    options.task_name = "another_task";
    Trainer t(*task, c, options, test::cpu_context());
    try {
      t.fit();
      FAIL();
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("trained for task 'groove_fixture', this job is task 'another_task'"),
                std::string::npos) << e.what();
    }
  }
  CheckpointStore store(dir + "/checkpoints", 3);
  for (const auto& [step, path] : store.list()) files::write_atomic(path, files::read_all(path).substr(0, 100));
  try {
    run(*task, c, dir, "auto");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("no usable checkpoint in"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST(Trainer, AutoResumeFallsBackPastATruncatedNewestCheckpoint) {
  const std::string dir = test::scratch_dir("fallback");
  TrainConfig c = test::small_config();
  c.max_steps = 8;
  c.checkpoint_every = 4;
  {
    auto task = test::make_groove_task(11, 0.1);
    run(*task, c, dir, "none", {std::make_shared<StopAt>(6)});
  }
  // Checkpoints at 4 and 6; damage 6.
  CheckpointStore store(dir + "/checkpoints", 3);
  const std::string six = store.step_path(6);
  files::write_atomic(six, files::read_all(six).substr(0, 1000));
  auto task = test::make_groove_task(11, 0.1);
  TrainerOptions options;
  options.run_dir = dir;
  options.task_name = "groove_fixture";
  Trainer t(*task, c, options, test::cpu_context());
  const TrainResult r = t.fit();
  EXPECT_EQ(t.resumed_from(), 4);
  EXPECT_EQ(r.step, 8);
}

// ---------------------------------------------------------------------------
// Job configs

std::string job_error(const std::string& yaml, std::vector<std::string> overrides = {}) {
  const std::string dir = test::scratch_dir("job_errors");
  test::write_text(dir + "/job.yaml", yaml);
  try {
    load_job_config(dir + "/job.yaml", overrides, test::fixture_registry());
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Job, ConfigErrorsNameTheKey) {
  EXPECT_NE(job_error("task: grove_fixture\nrun: {name: a}\ntrain: {max_steps: 5}\n").find("unknown task 'grove_fixture' (did you mean 'groove_fixture'?); registered: groove_fixture"),
            std::string::npos);
  EXPECT_NE(job_error("run: {name: a}\ntrain: {max_steps: 5}\n").find("task: missing required key; registered tasks: groove_fixture"),
            std::string::npos);
  EXPECT_NE(job_error("task: groove_fixture\nrun: {name: a}\ntrain: {max_steps: 5}\nmodel: {hiden: 3}\n")
                .find("model.hiden: unknown key (did you mean 'model.hidden'?)"),
            std::string::npos);
  EXPECT_NE(job_error("task: groove_fixture\nrun: {name: a}\ntrain: {max_steps: 5}\n", {"train.schedule.name=step"})
                .find("command-line override 'train.schedule.name=step': train.schedule.name: must be one of constant, linear, cosine"),
            std::string::npos);
  EXPECT_NE(job_error("task: groove_fixture\ntrain: {max_steps: 5}\n").find("run.name: missing required key"),
            std::string::npos);
  EXPECT_EQ(job_error("task: groove_fixture\nrun: {name: a}\ntrain: {max_steps: 5}\n"), "");
}

TEST(Job, RunTrainingWritesTheRunFolder) {
  const std::string dir = test::scratch_dir("job_run");
  test::write_text(dir + "/job.yaml",
                   test::fixture_job_yaml(dir + "/runs", "{max_steps: 6, batch_size: 16, log_every: 3, checkpoint_every: 3}"));
  auto job = load_job_config(dir + "/job.yaml", {"run.name=first"}, test::fixture_registry());
  const std::string resolved = config::to_yaml(*job);
  EXPECT_NE(resolved.find("task: groove_fixture"), std::string::npos);
  EXPECT_NE(resolved.find("model:\n  hidden: 32"), std::string::npos) << resolved;
  const TrainResult r = run_training(*job, test::fixture_registry());
  EXPECT_EQ(r.step, 6);
  EXPECT_EQ(at::get_num_threads(), 1);  // run.threads
  const std::string run_dir = dir + "/runs/first";
  EXPECT_EQ(files::read_all(run_dir + "/config.yaml"), resolved);
  for (const char* f : {"train.log", "metrics.jsonl", "checkpoints/step-0000000006.ckpt", "checkpoints/features.json",
                        "checkpoints/best.ckpt"}) {
    EXPECT_TRUE(fs::exists(run_dir + "/" + f)) << f;
  }
  EXPECT_NE(files::read_all(run_dir + "/train.log").find("kmidi train: task groove_fixture"), std::string::npos);
  CheckpointFile ckpt(run_dir + "/checkpoints/step-0000000006.ckpt");
  EXPECT_EQ(std::string(ckpt.bytes(checkpoint_section::kConfig)), resolved);
  EXPECT_EQ(nlohmann::json::parse(ckpt.bytes(checkpoint_section::kMeta))["task"], "groove_fixture");
}

}  // namespace
}  // namespace kmidi::train
