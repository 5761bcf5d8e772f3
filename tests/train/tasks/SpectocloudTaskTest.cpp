// The spectocloud task: its loss against a brute-force computation of the
// documented objective, metrics, predictions, a short real training run
// through the common trainer (checkpoint written), the job config's errors,
// and graphs() against onnxruntime at every parity shape.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "core/Files.h"
#include "export/ModelExport.h"
#include "onnx/check/Parity.h"
#include "onnx/Metadata.h"
#include "onnx/ModelCheck.h"
#include "tests/datasets/spectocloud/SpectocloudTestUtil.h"
#include "tests/train/GraphFile.h"
#include "train/Job.h"
#include "train/tasks/Tasks.h"
#include "train/tasks/SpectocloudTask.h"

namespace kmidi::train {
namespace {

namespace fs = std::filesystem;

/// A tiny job on the small real cache, written to `dir`.
std::string job_yaml(const std::string& dir, const std::string& train = "{max_steps: 3, batch_size: 2, log_every: 1}") {
  return "task: spectocloud\n"
         "run: {name: job, output_dir: " + dir + "/runs, device: cpu, tensorboard: false}\n"
         "train: " + train + "\n"
         "data: {cache: " + spectocloud::testing::small_cache() + "}\n"
         "model: {conv_channels: 16, d_model: 16, n_heads: 2, d_ff: 32}\n"
         "loss: {position_weight: 1.0, color_weight: 0.5, property_weight: 2.0, chunk: 100}\n";
}

std::unique_ptr<JobConfig> load_job(const std::string& dir, const std::string& yaml) {
  files::write_atomic(dir + "/job.yaml", yaml);
  return load_job_config(dir + "/job.yaml", {}, builtin_tasks());
}

std::unique_ptr<SpectocloudTask> make(JobConfig& job) {
  torch::manual_seed(5);
  return std::make_unique<SpectocloudTask>(static_cast<SpectocloudTaskConfig&>(*job.task_config), TaskContext{});
}

/// The documented objective with the whole distance matrix (no chunks).
double brute_force_loss(const at::Tensor& p, const at::Tensor& c, const at::Tensor& s, const data::Batch& batch, double wc,
                        double ws) {
  const at::Tensor q = batch.targets.at("positions"), ct = batch.targets.at("colors"), st = batch.targets.at("properties");
  double total = 0;
  for (int64_t b = 0; b < p.size(0); ++b) {
    const at::Tensor d = torch::cdist(p[b].to(torch::kDouble), q[b].to(torch::kDouble)).pow(2);  // [N, M]
    const auto [to_target, nn_pred] = d.min(1);
    const auto [to_pred, nn_target] = d.min(0);
    const at::Tensor nn = nn_pred, nn2 = nn_target;
    const double chamfer = to_target.mean().item<double>() + to_pred.mean().item<double>();
    auto matched = [&](const at::Tensor& x, const at::Tensor& xt) {
      return (x[b] - xt[b].index_select(0, nn)).pow(2).mean().item<double>() +
             (x[b].index_select(0, nn2) - xt[b]).pow(2).mean().item<double>();
    };
    total += chamfer + wc * matched(c, ct) + ws * matched(s, st);
  }
  return total;
}

TEST(SpectocloudTask, LossIsTheSumOfTheDocumentedPerSampleObjective) {
  const std::string dir = test::scratch_dir("spectocloud_task_loss");
  auto job = load_job(dir, job_yaml(dir));
  auto task = make(*job);
  task->model().eval();
  const auto train = task->dataset(Split::kTrain);
  ASSERT_NE(train, nullptr);
  ASSERT_GE(train->size(), 2u);
  const data::Batch batch = train->get_batch({0, 1});
  torch::NoGradGuard no_grad;
  const ForwardOutput out = task->forward(batch, /*training=*/false);
  const auto [p, c, s] = task->net()->forward(batch.inputs.at("spectrogram"), batch.inputs.at("emotion"),
                                              batch.inputs.at("midi_features"));
  EXPECT_NEAR(out.loss_sum.item<double>(), brute_force_loss(p, c, s, batch, 0.5, 2.0), 1e-4);
  // The constant mean training cloud's Chamfer distance is reported on evaluation.
  MetricValues sums{{"loss_sum", out.loss_sum.item<double>()}, {"units", 2.0}};
  for (const auto& [name, value] : out.sums) sums[name] = value.item<double>();
  ASSERT_TRUE(sums.count("mean_cloud_chamfer_sum"));
  const at::Tensor mean = train->get_batch({0, 1, 2}).targets.at("positions").mean(0);
  EXPECT_TRUE(torch::allclose(task->mean_cloud(), mean, 1e-6, 1e-6));
  double expected_constant = 0;
  for (int64_t b = 0; b < 2; ++b) {
    const at::Tensor d = torch::cdist(mean.to(torch::kDouble), batch.targets.at("positions")[b].to(torch::kDouble)).pow(2);
    expected_constant += std::get<0>(d.min(1)).mean().item<double>() + std::get<0>(d.min(0)).mean().item<double>();
  }
  EXPECT_NEAR(sums["mean_cloud_chamfer_sum"], expected_constant, 1e-4);
  const MetricValues m = task->finalize(sums, Split::kValidation);
  EXPECT_NEAR(m.at("loss"), sums["loss_sum"] / 2, 1e-9);
  EXPECT_NEAR(m.at("loss"), m.at("chamfer") + 0.5 * m.at("color") + 2.0 * m.at("property"), 1e-5);
  EXPECT_NEAR(m.at("mean_cloud_chamfer"), expected_constant / 2, 1e-4);
  // Training forward passes skip the baseline.
  const ForwardOutput training = task->forward(batch, true);
  for (const auto& [name, value] : training.sums) EXPECT_NE(name, "mean_cloud_chamfer_sum");
  // Predictions follow the export contract.
  const data::NamedTensors pred = task->predict(batch);
  EXPECT_EQ(pred.names(), (std::vector<std::string>{"positions", "colors", "properties"}));
  EXPECT_EQ(pred.at("colors").sizes(), (torch::IntArrayRef{2, 1200, 4}));
}

TEST(SpectocloudTask, ShortRealTrainingRunWritesACheckpoint) {
  const std::string dir = test::scratch_dir("spectocloud_task_train");
  auto job = load_job(dir, job_yaml(dir, "{max_steps: 4, batch_size: 2, log_every: 2, eval_every: 2, seed: 3}"));
  const TrainResult result = run_training(*job, builtin_tasks());
  EXPECT_EQ(result.step, 4);
  ASSERT_FALSE(result.last_checkpoint.empty());
  EXPECT_TRUE(fs::is_regular_file(result.last_checkpoint));
  ASSERT_TRUE(result.last_validation.has_value());
  const MetricValues& m = result.last_validation->metrics;
  for (const char* name : {"loss", "chamfer", "color", "property", "mean_cloud_chamfer"}) {
    ASSERT_TRUE(m.count(name)) << name;
    EXPECT_TRUE(std::isfinite(m.at(name))) << name;
  }
  EXPECT_TRUE(fs::is_regular_file(dir + "/runs/job/checkpoints/spectocloud.json"));
  EXPECT_NE(files::read_all(dir + "/runs/job/checkpoints/spectocloud.json").find("\"points\": 1200"), std::string::npos);
}

TEST(SpectocloudTask, JobConfigErrorsNameTheKey) {
  const std::string dir = test::scratch_dir("spectocloud_task_errors");
  std::string yaml = job_yaml(dir);
  yaml.replace(yaml.find("n_heads: 2"), 10, "n_heads: 3");
  try {
    load_job(dir, yaml);
    FAIL() << "no exception";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.n_heads: must divide d_model"), std::string::npos) << e.what();
  }
  auto job = load_job(dir, "task: spectocloud\nrun: {name: x, output_dir: " + dir + "}\ntrain: {max_steps: 1}\ndata: {cache: " + dir + "/none.h5}\n");
  try {
    make(*job);
    FAIL() << "no exception";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/none.h5: spectocloud cache not found"), std::string::npos) << e.what();
  }
}

TEST(SpectocloudTask, GraphsMatchLibTorchInOnnxruntime) {
  const std::string dir = test::scratch_dir("spectocloud_task_graphs");
  auto job = load_job(dir, job_yaml(dir));
  auto task = make(*job);
  const std::vector<GraphExport> graphs = task->graphs();
  ASSERT_EQ(graphs.size(), 1u);
  const GraphExport& g = graphs[0];
  EXPECT_EQ(g.suffix, "");
  EXPECT_EQ(g.registry_task, "custom");
  EXPECT_EQ(g.registry_input_size, 128);
  EXPECT_EQ(g.parity_shapes, (std::vector<std::pair<int64_t, int64_t>>{{1, 64}, {2, 1}, {3, 33}}));
  const std::string path = dir + "/spectocloud.onnx";
  test::write_checked_graph(g, path);
  const onnx::OnnxModelInfo info = onnx::read_model_info(path);
  EXPECT_EQ(info.output_names(), (std::vector<std::string>{"positions", "colors", "properties"}));
  EXPECT_EQ(info.metadata_value("kmidi.spectocloud.points"), std::optional<std::string>("1200"));
  for (const auto& [batch, frames] : g.parity_shapes) {
    const data::NamedTensors in = g.sample_inputs(batch, frames, 42);
    EXPECT_TRUE(torch::equal(in.at("spectrogram"), g.sample_inputs(batch, frames, 42).at("spectrogram")));
    EXPECT_EQ(in.at("spectrogram").sizes(), (torch::IntArrayRef{batch, 128, frames}));
    const data::NamedTensors ref = g.reference(in);
    EXPECT_EQ(ref.at("positions").sizes(), (torch::IntArrayRef{batch, 1200, 3}));
    onnx::onnxruntime_parity(path, in, ref).require_passed("spectocloud " + std::to_string(batch) + "x" + std::to_string(frames));
  }
}

TEST(SpectocloudTask, ShippedJobsExportWithTheirSourcesLicences) {
  // A spectocloud prepare config declares no data set: the shipped jobs state
  // it, every source's licence (shared/data's PROVENANCE.md files) joined.
  const std::string dir = test::scratch_dir("spectocloud_task_export");
  const std::vector<std::string> overrides = {"data.cache=" + spectocloud::testing::small_cache(),
                                              "run.output_dir=" + dir + "/runs"};
  const std::vector<std::pair<std::string, std::string>> shipped = {
      {"configs/spectocloud.yaml", "MIT AND CC-BY-NC-SA-4.0 AND CC-BY-3.0 AND CC-BY-NC-3.0 AND LicenseRef-PublicDomain"},
      {"configs/spectocloud_tiny.yaml", "MIT AND CC-BY-NC-SA-4.0 AND CC-BY-3.0 AND CC-BY-NC-3.0"}};
  for (const auto& [config, license] : shipped) {
    auto job = load_job_config(test::source_path(config), overrides, builtin_tasks());
    const std::optional<exporter::TrainingDataset> found = exporter::training_dataset(*job);
    ASSERT_TRUE(found) << config;
    EXPECT_EQ(found->license, license) << config;
    EXPECT_EQ(found->id.rfind("pop909-emopia-librosa-audio", 0), 0u) << config << ": " << found->id;
  }
  // The tiny job end to end on the small cache: trained, then exported with its registry entry.
  auto job = load_job_config(test::source_path("configs/spectocloud_tiny.yaml"), overrides, builtin_tasks());
  run_training(*job, builtin_tasks());
  exporter::ExportOptions options;
  options.out_dir = dir + "/out";
  const exporter::ModelExportResult result = exporter::export_model(*job, builtin_tasks(), options);
  ASSERT_FALSE(result.entries.empty());
  for (const auto& entry : result.entries) {
    ASSERT_TRUE(entry.training.has_value());
    EXPECT_EQ(entry.training->dataset_id.value_or(""), "pop909-emopia-librosa-audio-tiny");
    EXPECT_EQ(entry.training->dataset_license.value_or(""), shipped[1].second);
  }
}

}  // namespace
}  // namespace kmidi::train
