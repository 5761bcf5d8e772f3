// The generator on a weighted mixture of prepared corpora and on streamed
// shards (issue 22, points 3 and 4): a stopped and resumed mixture run ends
// bit-identical to a straight one; metrics.jsonl carries per-corpus draw
// counts that match the weights exactly per epoch and per-corpus validation
// metrics; bad mixture configs fail naming the key; and training from
// streamed shards (no preload) is bit-identical to training from memory.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/Config.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/corpus/Prepare.h"
#include "datasets/corpus/PrepareConfig.h"
#include "tests/support/TestSupport.h"
#include "train/Job.h"
#include "train/tasks/Tasks.h"
#include "train/Trainer.h"
#include "train/tasks/MidiGeneratorTask.h"

namespace kmidi::train {
namespace {
namespace fs = std::filesystem;

/// The POP909 sample prepared once, and a copy of it as a second corpus.
struct Corpora {
  std::string pop, copy;
};
const Corpora& corpora() {
  static Corpora c;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string root = test::scratch_dir("mixture_corpora", test::ScratchLifetime::kProgram);
    c.pop = root + "/pop";
    c.copy = root + "/copy";
    corpus::run_prepare(corpus::load_prepare_config(test::source_path("configs/prepare_pop909_sample.yaml"),
                                                    {"output.dir=" + c.pop}));
    fs::copy(c.pop, c.copy, fs::copy_options::recursive);
  });
  return c;
}

/// midi_generator_tiny.yaml with `data_yaml` as its data section's source lines.
std::unique_ptr<JobConfig> job_with_data(const std::string& dir, const std::string& data_yaml,
                                         std::vector<std::string> overrides = {}) {
  std::string text = files::read_all(test::source_path("configs/midi_generator_tiny.yaml"));
  const std::string prepare_line = "  prepare: prepare_pop909_sample.yaml\n";
  const size_t at = text.find(prepare_line);
  if (at == std::string::npos) throw std::runtime_error("midi_generator_tiny.yaml changed: no data.prepare line");
  text.replace(at, prepare_line.size(), data_yaml);
  const std::string path = dir + "/job.yaml";
  files::write_atomic(path, text);
  overrides.push_back("run.output_dir=" + dir);
  return load_job_config(path, overrides, builtin_tasks());
}

std::string mixture_yaml(double pop_weight, double copy_weight) {
  return "  mixture:\n    - {dir: " + corpora().pop + ", weight: " + std::to_string(pop_weight) + "}\n" +
         "    - {dir: " + corpora().copy + ", weight: " + std::to_string(copy_weight) + "}\n";
}

std::unique_ptr<MidiGeneratorTask> task_of(const JobConfig& job, uint64_t init_seed = 3) {
  torch::manual_seed(init_seed);
  return std::make_unique<MidiGeneratorTask>(static_cast<MidiGeneratorJobConfig&>(*job.task_config), TaskContext{});
}

struct StopAt final : TrainingObserver {
  explicit StopAt(int64_t s) : step(s) {}
  void after_step(Trainer& t, const StepReport& r) override {
    if (r.step == step) t.request_stop("test: stop at step " + std::to_string(step));
  }
  int64_t step;
};

TrainResult train(MidiGeneratorTask& task, const JobConfig& job, const std::string& run_dir,
                  std::shared_ptr<TrainingObserver> observer = nullptr) {
  TrainerOptions options;
  options.run_dir = run_dir;
  options.task_name = "midi_generator";
  options.config_yaml = "test config\n";
  options.tensorboard = false;
  Trainer trainer(task, job.train, options, DistributedContext::create(DistributedConfig{}, "cpu"));
  if (observer) trainer.add_observer(observer);
  return trainer.fit();
}

bool same_parameters(torch::nn::Module& a, torch::nn::Module& b) {
  const auto pa = a.named_parameters(true), pb = b.named_parameters(true);
  if (pa.size() != pb.size()) return false;
  for (size_t i = 0; i < pa.size(); ++i) {
    if (pa[i].key() != pb[i].key() || !torch::equal(pa[i].value(), pb[i].value())) return false;
  }
  return true;
}

std::vector<nlohmann::json> rows_of(const std::string& run_dir, const std::string& split) {
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row.at("split") == split) rows.push_back(row);
  }
  return rows;
}

TEST(GeneratorMixture, ResumedRunIsBitExactAndLogsDrawsAndPerCorpusMetrics) {
  // 40 draws per epoch of 8 rows: 5 steps an epoch, 30 from pop and 10 from
  // its copy; 10 steps are 2 epochs, the stop at 7 falls inside epoch 1.
  const std::string out = test::scratch_dir("generator_mixture_resume");
  const std::vector<std::string> settings = {"data.mixture_draws_per_epoch=40", "train.max_steps=10",
                                             "train.checkpoint_every=3", "train.eval_every=5",
                                             "train.eval_max_batches=0", "train.grad_accumulation=2"};
  auto job = job_with_data(out, mixture_yaml(0.75, 0.25), settings);
  auto straight = task_of(*job);
  train(*straight, *job, out + "/straight");

  auto first = task_of(*job);
  ASSERT_EQ(train(*first, *job, out + "/resumed", std::make_shared<StopAt>(7)).step, 7);
  auto second = task_of(*job, /*init_seed=*/12345);  // the weights must come from the checkpoint
  EXPECT_EQ(train(*second, *job, out + "/resumed").step, 10);
  EXPECT_TRUE(same_parameters(straight->model(), second->model()));

  // Draw counts per log window add up to the per-epoch quotas of 2 epochs.
  double pop = 0, copy = 0;
  for (const auto& row : rows_of(out + "/straight", "train")) {
    pop += row.at("draws.pop").get<double>();
    copy += row.at("draws.copy").get<double>();
  }
  EXPECT_EQ(pop, 60.0);
  EXPECT_EQ(copy, 20.0);

  // Validation reads each corpus's own split: identical data, so identical
  // per-corpus numbers, each over half the rows.
  const auto validation = rows_of(out + "/straight", "validation");
  ASSERT_EQ(validation.size(), 2u);
  const auto data = straight->dataset(Split::kValidation);
  ASSERT_TRUE(data);
  for (const auto& row : validation) {
    EXPECT_EQ(row.at("rows.pop").get<double>(), static_cast<double>(data->size()) / 2);
    EXPECT_EQ(row.at("rows.copy").get<double>(), static_cast<double>(data->size()) / 2);
    const double a = row.at("perplexity.pop").get<double>(), b = row.at("perplexity.copy").get<double>();
    EXPECT_NEAR(a, b, 1e-4 * a);
    EXPECT_NEAR(row.at("perplexity").get<double>(), a, 1e-4 * a);
  }
}

template <class Error>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(GeneratorMixture, BadMixturesFailNamingTheKey) {
  const std::string out = test::scratch_dir("generator_mixture_errors");
  std::string m = error_of<config::ConfigError>([&] { job_with_data(out, mixture_yaml(0.7, 0)); });
  EXPECT_NE(m.find("mixture"), std::string::npos) << m;
  EXPECT_NE(m.find("data.mixture[1].weight"), std::string::npos) << m;

  m = error_of<config::ConfigError>([&] {
    job_with_data(out, "  mixture:\n    - {dir: " + corpora().pop + "}\n    - {dir: " + corpora().pop + "}\n");
  });
  EXPECT_NE(m.find("both named 'pop'"), std::string::npos) << m;

  m = error_of<config::ConfigError>(
      [&] { job_with_data(out, mixture_yaml(1, 1), {"data.batching.tokens_per_batch=256"}); });
  EXPECT_NE(m.find("tokens_per_batch"), std::string::npos) << m;

  m = error_of<config::ConfigError>([&] { job_with_data(out, "  dir: " + corpora().pop + "\n" + mixture_yaml(1, 1)); });
  EXPECT_NE(m.find("replaces data.dir"), std::string::npos) << m;

  const std::string empty = out + "/not_prepared";
  fs::create_directories(empty);
  auto job = job_with_data(out, "  mixture:\n    - {dir: " + corpora().pop + "}\n    - {dir: " + empty + "}\n");
  m = error_of<DataError>([&] { task_of(*job); });
  EXPECT_NE(m.find("data.mixture[1].dir"), std::string::npos) << m;
  EXPECT_NE(m.find(empty), std::string::npos) << m;
}

TEST(GeneratorMixture, StreamedShardsTrainBitIdenticallyToPreloadedOnes) {
  const std::string out = test::scratch_dir("generator_streaming");
  const std::vector<std::string> settings = {"train.max_steps=6", "train.eval_every=0"};
  auto streamed_job = job_with_data(out, "  dir: " + corpora().pop + "\n  preload: false\n", settings);
  auto preloaded_job = job_with_data(out, "  dir: " + corpora().pop + "\n  preload: true\n", settings);
  auto streamed = task_of(*streamed_job);
  auto preloaded = task_of(*preloaded_job);
  EXPECT_TRUE(same_parameters(streamed->model(), preloaded->model()));
  train(*streamed, *streamed_job, out + "/streamed");
  train(*preloaded, *preloaded_job, out + "/preloaded");
  EXPECT_TRUE(same_parameters(streamed->model(), preloaded->model()));
  // And training changed them (the comparison is not of two untouched models).
  EXPECT_FALSE(same_parameters(streamed->model(), task_of(*streamed_job)->model()));
}

}  // namespace
}  // namespace kmidi::train
