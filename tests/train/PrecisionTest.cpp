// train.precision: what auto picks (cpuid against the kernel's flags), what
// --print-config says, fp32 weights, gradients and optimizer state under bf16
// autocast, sums reduced in fp32, checkpoints moving between precisions, and
// for each model family a 30-step bf16 run whose losses track the fp32 run's.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <set>
#include <sstream>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/TorchCompat.h"
#include "datasets/corpus/Prepare.h"
#include "datasets/corpus/PrepareConfig.h"
#include "models/GrooveModel.h"
#include "tests/datasets/EmopiaPrepared.h"
#include "tests/datasets/spectocloud/SpectocloudTestUtil.h"
#include "tests/support/TestSupport.h"
#include "tests/train/GrooveFixture.h"
#include "tests/train/TrainTestUtil.h"
#include "train/Checkpoint.h"
#include "train/Job.h"
#include "train/Precision.h"
#include "train/tasks/Tasks.h"
#include "train/Trainer.h"

namespace kmidi::train {
namespace {

// ---------------------------------------------------------------------------
// The choice

/// The bf16 feature the kernel lists in /proc/cpuinfo (it lists only what
/// the CPU has and the OS enabled), in cpu_native_bf16()'s order of preference.
std::optional<std::string> proc_cpuinfo_bf16() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::set<std::string> flags{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
    if (flags.count("amx_bf16") && flags.count("avx512f")) return "amx_bf16";
    if (flags.count("avx512_bf16")) return "avx512_bf16";
    return "";
  }
  return std::nullopt;
}

TEST(Precision, CpuidFindsTheBf16FeatureTheKernelLists) {
  const auto expected = proc_cpuinfo_bf16();
  if (!expected) GTEST_SKIP() << "no flags line in /proc/cpuinfo (not an x86 Linux machine)";
  EXPECT_EQ(cpu_native_bf16(), *expected);
}

TEST(Precision, AutoIsBf16OnCudaAndOnCpusWithNativeBf16) {
  const c10::Device cpu(c10::kCPU), cuda(c10::kCUDA);
  const PrecisionChoice with = choose_precision("auto", cpu, "avx512_bf16");
  EXPECT_EQ(with.precision, Precision::kBf16);
  EXPECT_EQ(with.describe(), "bf16 (auto: CPU has avx512_bf16)");
  EXPECT_EQ(choose_precision("auto", cpu, "amx_bf16").describe(), "bf16 (auto: CPU has amx_bf16)");
  const PrecisionChoice without = choose_precision("auto", cpu, "");
  EXPECT_EQ(without.precision, Precision::kFp32);
  EXPECT_EQ(without.describe(), "fp32 (auto: CPU has neither avx512_bf16 nor amx_bf16)");
  EXPECT_EQ(choose_precision("auto", cuda, "").describe(), "bf16 (auto: CUDA device)");

  EXPECT_EQ(choose_precision("fp32", cpu, "avx512_bf16").describe(), "fp32 (set by train.precision)");
  EXPECT_EQ(choose_precision("bf16", cpu, "avx512_bf16").describe(), "bf16 (set by train.precision)");
  const PrecisionChoice emulated = choose_precision("bf16", cpu, "");
  EXPECT_EQ(emulated.precision, Precision::kBf16);
  EXPECT_NE(emulated.reason.find("no native bf16"), std::string::npos) << emulated.reason;
  try {
    choose_precision("fp16", cpu, "");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("train.precision: expected auto, fp32 or bf16, got 'fp16'"), std::string::npos);
  }
  // On this machine: what the two-argument form (the trainer's) uses.
  EXPECT_EQ(resolve_precision("auto", cpu), cpu_native_bf16().empty() ? Precision::kFp32 : Precision::kBf16);
}

std::string shell_output(const std::string& command) { return test::run_shell(command + " 2>&1").output; }

TEST(Precision, PrintConfigSaysWhatAutoResolvesToAndWhy) {
  const std::string base = test::shell_quote(KMIDI_CLI) + " train --config " +
                           test::source_path("configs/midi_generator_tiny.yaml") + " --print-config";
  const std::string expected_auto =
      "# train.precision: auto = " + choose_precision("auto", c10::Device(c10::kCPU)).describe() + "\n";
  const std::string shown = shell_output(base + " run.device=cpu");
  ASSERT_GE(shown.size(), expected_auto.size()) << shown;
  EXPECT_EQ(shown.substr(shown.size() - expected_auto.size()), expected_auto) << shown;
  EXPECT_NE(shown.find("  precision: auto\n"), std::string::npos) << shown;
  const std::string forced = shell_output(base + " run.device=cpu train.precision=fp32");
  EXPECT_NE(forced.find("# train.precision: fp32 = fp32 (set by train.precision)\n"), std::string::npos) << forced;
}

// ---------------------------------------------------------------------------
// The trainer under bf16 (the Groove fixture: LayerNorm, dropout, AdamW, EMA)

struct RunResult {
  TrainResult result;
  NamedTensorList model, optimizer;
};

RunResult fit(Task& task, const TrainConfig& config, const std::string& dir,
              std::vector<std::shared_ptr<TrainingObserver>> observers = {}) {
  TrainerOptions options;
  options.run_dir = dir;
  options.resume = "auto";
  options.task_name = "groove_fixture";
  options.config_yaml = "test config\n";
  Trainer trainer(task, config, options, test::cpu_context());
  for (auto& o : observers) trainer.add_observer(o);
  RunResult out;
  out.result = trainer.fit();
  out.model = test::model_state(task.model());
  out.optimizer = test::clone_all(trainer.optimizer().state());
  return out;
}

/// After each step: the dtypes of every parameter, gradient and optimizer tensor.
struct DtypeProbe final : TrainingObserver {
  std::set<c10::ScalarType> parameters, gradients, optimizer;
  int64_t steps = 0;
  void after_step(Trainer& t, const StepReport&) override {
    ++steps;
    for (const auto& p : t.task().model().parameters()) {
      parameters.insert(p.scalar_type());
      if (p.grad().defined()) gradients.insert(p.grad().scalar_type());
    }
    for (const auto& [name, tensor] : t.optimizer().state()) {
      if (tensor.is_floating_point()) optimizer.insert(tensor.scalar_type());
    }
  }
};

TEST(Precision, Bf16TrainsFp32WeightsWithFp32GradientsAndOptimizerState) {
  auto task = test::make_groove_task(11, 0.1);
  TrainConfig c = test::small_config();
  c.precision = "bf16";
  c.max_steps = 6;
  auto probe = std::make_shared<DtypeProbe>();
  const RunResult r = fit(*task, c, test::scratch_dir("precision_dtypes"), {probe});
  EXPECT_TRUE(task->autocast_seen) << "the forward ran without autocast";
  EXPECT_EQ(probe->steps, 6);
  const std::set<c10::ScalarType> fp32{c10::ScalarType::Float};
  EXPECT_EQ(probe->parameters, fp32);
  // Clipping and AdamW read these: the bf16 matmuls' gradients arrive cast to fp32.
  EXPECT_EQ(probe->gradients, fp32);
  EXPECT_EQ(probe->optimizer, fp32);
  ASSERT_FALSE(r.result.last_checkpoint.empty());
  const CheckpointFile file(r.result.last_checkpoint);
  for (const char* section : {checkpoint_section::kModel, checkpoint_section::kOptimizer}) {
    for (const auto& [name, tensor] : file.tensors(section)) {
      if (tensor.is_floating_point()) EXPECT_EQ(tensor.scalar_type(), c10::ScalarType::Float) << section << " " << name;
    }
  }
}

/// The fixture with its loss sum (or one metric sum) handed back in bf16.
class Bf16SumTask final : public Task {
 public:
  Bf16SumTask(std::unique_ptr<test::GrooveTask> inner, bool metric) : inner_(std::move(inner)), metric_(metric) {}
  torch::nn::Module& model() override { return inner_->model(); }
  std::shared_ptr<const data::Dataset> dataset(Split split) override { return inner_->dataset(split); }
  ForwardOutput forward(const data::Batch& batch, bool training) override {
    ForwardOutput out = inner_->forward(batch, training);
    if (metric_) out.sums.back().second = out.sums.back().second.to(torch::kBFloat16);
    else out.loss_sum = out.loss_sum.to(torch::kBFloat16);
    return out;
  }
  MetricValues finalize(const MetricValues& sums, Split split) const override { return inner_->finalize(sums, split); }
  data::NamedTensors predict(const data::Batch& batch) override { return inner_->predict(batch); }
  std::string throughput_unit() const override { return inner_->throughput_unit(); }

 private:
  std::unique_ptr<test::GrooveTask> inner_;
  bool metric_;
};

TEST(Precision, ALossOrMetricSumReducedInBf16IsRefused) {
  for (const bool metric : {false, true}) {
    Bf16SumTask task(test::make_groove_task(11, 0.0), metric);
    TrainConfig c = test::small_config();
    c.max_steps = 4;
    try {
      fit(task, c, test::scratch_dir(metric ? "precision_bf16_metric" : "precision_bf16_loss"));
      FAIL() << "no error";
    } catch (const std::logic_error& e) {
      const std::string expected = metric ? "returned abs_error_sum as BFloat16" : "returned loss_sum as BFloat16";
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("reduce losses and metric sums in fp32"), std::string::npos) << e.what();
    }
  }
}

/// The model, buffers and optimizer state when training begins (after a resume).
struct StartState final : TrainingObserver {
  NamedTensorList model, optimizer;
  void on_train_begin(Trainer& t) override {
    model = test::model_state(t.task().model());
    optimizer = test::clone_all(t.optimizer().state());
  }
};

std::string checkpoint_precision(const std::string& path) {
  const CheckpointFile file(path);
  return nlohmann::json::parse(file.bytes(checkpoint_section::kMeta)).at("precision").get<std::string>();
}

TEST(Precision, CheckpointsResumeUnderTheOtherPrecision) {
  for (const auto& [first, second] : {std::pair<std::string, std::string>{"bf16", "fp32"}, {"fp32", "bf16"}}) {
    SCOPED_TRACE(first + " then " + second);
    TrainConfig c = test::small_config();
    c.eval_every = 0;
    c.precision = first;
    const std::string dir = test::scratch_dir("precision_" + first + "_then_" + second);
    auto task = test::make_groove_task(11, 0.1);
    struct StopAt10 final : TrainingObserver {
      void after_step(Trainer& t, const StepReport& r) override {
        if (r.step == 10) t.request_stop("test: stop at step 10");
      }
    };
    const RunResult part = fit(*task, c, dir, {std::make_shared<StopAt10>()});
    ASSERT_EQ(part.result.step, 10);
    EXPECT_EQ(checkpoint_precision(part.result.last_checkpoint), first);

    c.precision = second;
    auto other = test::make_groove_task(999, 0.1);  // another initialisation: all must come from the checkpoint
    auto start = std::make_shared<StartState>();
    const RunResult rest = fit(*other, c, dir, {start});
    EXPECT_EQ(rest.result.step, 20);
    EXPECT_EQ(other->autocast_seen, second == "bf16");
    // Loaded bit for bit, whatever precision wrote them.
    EXPECT_TRUE(test::bit_equal(start->model, part.model));
    EXPECT_TRUE(test::bit_equal(start->optimizer, part.optimizer));
    EXPECT_EQ(checkpoint_precision(rest.result.last_checkpoint), second);
    ASSERT_TRUE(rest.result.last_validation);
    EXPECT_TRUE(std::isfinite(rest.result.last_validation->metrics.at("loss")));
  }
}

// ---------------------------------------------------------------------------
// Each family's models under CPU autocast

TEST(Precision, GrooveModelWithoutBarOrPlayerEmbeddingsRunsUnderCpuAutocast) {
  // Its residual stream would otherwise start as the bf16 sum of two linear
  // layers, which 1.13's CPU layer_norm refuses next to fp32 weights.
  models::GrooveModelOptions o;
  o.encoder.d_model = 16;
  o.encoder.n_heads = 2;
  o.encoder.d_ff = 32;
  o.encoder.n_layers = 1;
  torch::manual_seed(1);
  models::GrooveModel model(o);
  const at::Tensor hits = torch::rand({2, 8, o.drum_classes}), tempo = torch::rand({2, 1});
  const auto [reference, v32, s32] = model->forward(hits, tempo, {});
  const auto [offsets, velocities, style] = with_autocast(Precision::kBf16, c10::Device(c10::kCPU), [&] {
    return model->forward(hits, tempo, {});
  });
  EXPECT_LT((offsets.to(torch::kFloat) - reference).abs().max().item<double>(), 0.02);
  EXPECT_FALSE(torch::equal(offsets.to(torch::kFloat), reference)) << "autocast changed nothing";
}

// ---------------------------------------------------------------------------
// Accuracy: a bf16 run's losses against the fp32 run's, per family

/// The sample's generator shards, prepared once per test process.
const std::string& generator_shards() {
  static std::string dir;
  static std::once_flag once;
  std::call_once(once, [] {
    dir = test::scratch_dir("precision_generator_shards", test::ScratchLifetime::kProgram);
    corpus::PrepareConfig c = corpus::load_prepare_config(test::source_path("configs/prepare_pop909_sample.yaml"),
                                                          {"output.dir=" + dir});
    corpus::run_prepare(c);
  });
  return dir;
}

// Tolerances. bf16 keeps 8 significant bits (a relative rounding error of up
// to 2^-9 per value); a step's loss averages thousands of rounded values, so
// it moves far less than that, and what remains grows as 30 AdamW steps take
// the two runs' weights apart. Measured on this project's machine (2026-12-05,
// LibTorch 1.13, same seed, same batches): worst single step 0.01% (generator),
// 0.10% (emotion), 0.15% (groove), 0.37% (spectocloud); the last 10 steps'
// means within 0.11%. 1% per step and 0.5% for the last 10 steps leave about
// 3x that margin and are still well below how much each loss falls in these
// 30 steps (13% to 70%), so a bf16 run that trained differently would show.
constexpr double kStepTolerance = 0.01;
constexpr double kTailTolerance = 0.005;

struct Family {
  std::string name;
  std::function<std::pair<std::string, std::vector<std::string>>(const std::string& dir)> job;  // config file, overrides
};

std::ostream& operator<<(std::ostream& os, const Family& f) { return os << f.name; }

std::vector<double> training_losses(const std::string& metrics_file) {
  std::vector<double> losses;
  std::istringstream in(files::read_all(metrics_file));
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row.at("split") == "train") losses.push_back(row.at("loss").get<double>());
  }
  return losses;
}

class FamilyPrecision : public ::testing::TestWithParam<Family> {};

TEST_P(FamilyPrecision, Bf16LossesTrackTheFp32RunsOver30Steps) {
  const Family& family = GetParam();
  const std::string dir = test::scratch_dir("precision_family_" + family.name);
  std::map<std::string, std::vector<double>> losses;
  for (const std::string precision : {"fp32", "bf16"}) {
    auto [config, overrides] = family.job(dir);
    overrides.insert(overrides.end(), {"run.output_dir=" + dir, "run.name=" + precision, "run.device=cpu",
                                       "run.tensorboard=false", "train.precision=" + precision, "train.max_steps=30",
                                       "train.log_every=1", "train.eval_every=0", "train.checkpoint_every=0"});
    auto job = load_job_config(config, overrides, builtin_tasks());
    const TrainResult r = run_training(*job, builtin_tasks());
    ASSERT_EQ(r.step, 30);
    losses[precision] = training_losses(dir + "/" + precision + "/metrics.jsonl");
    ASSERT_EQ(losses[precision].size(), 30u);
    EXPECT_NE(files::read_all(dir + "/" + precision + "/train.log").find("precision " + precision + " ("),
              std::string::npos);
  }
  const auto& fp32 = losses["fp32"];
  const auto& bf16 = losses["bf16"];
  bool differs = false;
  double worst = 0, tail32 = 0, tail16 = 0;
  for (size_t i = 0; i < fp32.size(); ++i) {
    differs = differs || fp32[i] != bf16[i];
    worst = std::max(worst, std::abs(bf16[i] - fp32[i]) / std::abs(fp32[i]));
    if (i >= fp32.size() - 10) tail32 += fp32[i], tail16 += bf16[i];
  }
  EXPECT_TRUE(differs) << "the bf16 run repeated the fp32 run exactly: autocast did not reach the model";
  EXPECT_LE(worst, kStepTolerance) << "worst step's relative difference";
  EXPECT_LE(std::abs(tail16 - tail32) / std::abs(tail32), kTailTolerance) << "last 10 steps' mean";
  EXPECT_LT(fp32.back(), fp32.front()) << "the fp32 run did not learn: the comparison would mean nothing";
  std::printf("%s: first loss fp32 %.5f bf16 %.5f; last-10 mean fp32 %.5f bf16 %.5f; worst step %.4f\n",
              family.name.c_str(), fp32.front(), bf16.front(), tail32 / 10, tail16 / 10, worst);
}

std::vector<Family> families() {
  return {
      {"generator",
       [](const std::string&) {
         return std::make_pair(test::source_path("configs/midi_generator_tiny.yaml"),
                               std::vector<std::string>{"data.dir=" + generator_shards()});
       }},
      {"emotion",
       [](const std::string&) {
         return std::make_pair(test::source_path("configs/emotion_tiny.yaml"),
                               std::vector<std::string>{"data.prepared=" + test::emopia_prepared_dir(),
                                                        "data.midi_root=" + test::emopia_midi_root(),
                                                        "data.inputs=both", "data.max_length=48", "model.d_model=32",
                                                        "model.n_layers=1", "model.n_heads=2", "model.d_ff=48"});
       }},
      {"groove",
       [](const std::string& dir) {
         return std::make_pair(test::source_path("configs/groove_tiny.yaml"),
                               std::vector<std::string>{"data_root=" + std::string(KMIDI_SHARED_DATA),
                                                        "data.cache_dir=" + dir + "/cache"});
       }},
      {"spectocloud",
       [](const std::string& dir) {
         files::write_atomic(dir + "/spectocloud.yaml",
                             "task: spectocloud\n"
                             "run: {name: job, output_dir: " + dir + "}\n"
                             "train: {seed: 3, batch_size: 2, optimizer: {lr: 1.0e-3}, schedule: {name: constant}}\n"
                             "data: {cache: " + spectocloud::testing::small_cache() + "}\n"
                             "model: {conv_channels: 16, d_model: 16, n_heads: 2, d_ff: 32}\n"
                             "loss: {position_weight: 1.0, color_weight: 0.5, property_weight: 2.0, chunk: 100}\n");
         return std::make_pair(dir + "/spectocloud.yaml", std::vector<std::string>{});
       }},
  };
}

INSTANTIATE_TEST_SUITE_P(Precision, FamilyPrecision, ::testing::ValuesIn(families()),
                         [](const ::testing::TestParamInfo<Family>& info) { return info.param.name; });

}  // namespace
}  // namespace kmidi::train
