// The emotion task on real EMOPIA data: losses against hand computation,
// metrics, train-only feature statistics, start-up errors for heads that do
// not fit, unlabelled prediction and evaluation, a short real training run
// and the ONNX graph against onnxruntime.

#include "train/tasks/EmotionTask.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/features/EmotionFeatureLayout.h"
#include "onnx/check/OrtRunner.h"
#include "onnx/check/Parity.h"
#include "onnx/Metadata.h"
#include "onnx/ModelCheck.h"
#include "train/Job.h"
#include "train/tasks/Tasks.h"
#include "tests/datasets/EmopiaPrepared.h"
#include "tests/support/TestSupport.h"
#include "tests/train/GraphFile.h"

namespace fs = std::filesystem;

namespace kmidi::train {
namespace {

const char* kHeads =
    "loss:\n"
    "  heads:\n"
    "    - {name: quadrant, task: classification, num_classes: 4, label_smoothing: 0.1}\n"
    "    - {name: valence_arousal, task: regression, loss: mse, weight: 0.5}\n";

/// The task's sections from YAML, with data pointing at the prepared EMOPIA.
EmotionTaskConfig task_config(const std::string& inputs, const std::string& extra_data = "",
                              const std::string& loss = kHeads) {
  // The default feature cache (<prepared>/emotion_features.cache) is shared by the tests.
  const std::string yaml = "data:\n  prepared: " + test::emopia_prepared_dir() + "\n  midi_root: " +
                           test::emopia_midi_root() + "\n  inputs: " + inputs +
                           "\n  max_length: 48\n" + extra_data +
                           "model: {hidden: 32, dropout: 0.1, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 48}\n" + loss;
  auto doc = config::Document::load_string(yaml, "emotion.yaml", "/");
  EmotionTaskConfig c;
  doc.read_into(c);
  return c;
}

std::unique_ptr<EmotionTask> make(const EmotionTaskConfig& c) {
  torch::manual_seed(3);
  return std::make_unique<EmotionTask>(c, TaskContext{});
}

TEST(EmotionTask, LossAndSumsMatchHandComputation) {
  auto task = make(task_config("features"));
  task->model().eval();
  const data::Batch batch = task->dataset(Split::kTrain)->get_batch({0, 1, 2, 3, 4, 5, 6, 7});
  torch::NoGradGuard no_grad;
  const ForwardOutput out = task->forward(batch, false);
  auto [va, logits] = task->emotion_model()->forward({}, {}, batch.inputs.at("features"));
  const at::Tensor q = batch.targets.at("quadrant"), target_va = batch.targets.at("valence_arousal");
  double expected = 0.0, ce_sum = 0.0, mse_sum = 0.0;
  int correct = 0, valence_ok = 0, arousal_ok = 0;
  for (int64_t r = 0; r < 8; ++r) {
    double z = 0.0, mean_log_p = 0.0;
    for (int64_t k = 0; k < 4; ++k) z += std::exp(logits[r][k].item<double>());
    for (int64_t k = 0; k < 4; ++k) mean_log_p += (logits[r][k].item<double>() - std::log(z)) / 4.0;
    const int64_t t = q[r].item<int64_t>();
    const double log_p = logits[r][t].item<double>() - std::log(z);
    const double ce = 0.9 * -log_p - 0.1 * mean_log_p;  // label smoothing 0.1 over 4 classes
    const double d0 = va[r][0].item<double>() - target_va[r][0].item<double>();
    const double d1 = va[r][1].item<double>() - target_va[r][1].item<double>();
    const double mse = (d0 * d0 + d1 * d1) / 2.0;
    expected += ce + 0.5 * mse;
    ce_sum += ce;
    mse_sum += mse;
    int64_t best = 0;
    for (int64_t k = 1; k < 4; ++k) {
      if (logits[r][k].item<double>() > logits[r][best].item<double>()) best = k;
    }
    correct += best == t;
    valence_ok += (va[r][0].item<double>() >= 0) == (target_va[r][0].item<double>() > 0);
    arousal_ok += (va[r][1].item<double>() >= 0) == (target_va[r][1].item<double>() > 0);
  }
  EXPECT_NEAR(out.loss_sum.item<double>(), expected, 1e-4);
  std::map<std::string, double> sums;
  for (const auto& [name, value] : out.sums) sums[name] = value.item<double>();
  EXPECT_NEAR(sums.at("loss_quadrant"), ce_sum, 1e-4);
  EXPECT_NEAR(sums.at("loss_valence_arousal"), mse_sum, 1e-4);
  EXPECT_EQ(sums.at("quadrant_correct"), correct);
  EXPECT_EQ(sums.at("valence_correct"), valence_ok);
  EXPECT_EQ(sums.at("arousal_correct"), arousal_ok);
  EXPECT_NEAR(sums.at("va_squared_error"), 2.0 * mse_sum, 1e-4);
  double cells = 0.0;
  for (int t = 1; t <= 4; ++t) {
    for (int p = 1; p <= 4; ++p) cells += sums.at("confusion_Q" + std::to_string(t) + "_Q" + std::to_string(p));
  }
  EXPECT_EQ(cells, 8.0);
}

TEST(EmotionTask, FinalizeGivesAccuracyMacroF1AndTheConfusionMatrix) {
  auto task = make(task_config("features"));
  // Confusion (rows true Q1..Q4, columns predicted): 10 items.
  const int matrix[4][4] = {{3, 1, 0, 0}, {0, 2, 0, 0}, {0, 0, 1, 1}, {0, 0, 1, 1}};
  MetricValues sums{{"units", 10}, {"loss_sum", 12}, {"loss_quadrant", 8}, {"loss_valence_arousal", 8},
                    {"quadrant_correct", 7}, {"valence_correct", 9}, {"arousal_correct", 6}, {"va_squared_error", 5},
                    {"valence_positive", 4}, {"quadrant_valence_positive", 6}};
  for (int t = 0; t < 4; ++t) {
    for (int p = 0; p < 4; ++p) sums["confusion_Q" + std::to_string(t + 1) + "_Q" + std::to_string(p + 1)] = matrix[t][p];
  }
  const MetricValues m = task->finalize(sums, Split::kTest);
  EXPECT_DOUBLE_EQ(m.at("loss"), 1.2);
  EXPECT_DOUBLE_EQ(m.at("loss_quadrant"), 0.8);
  EXPECT_DOUBLE_EQ(m.at("quadrant_accuracy"), 0.7);
  EXPECT_DOUBLE_EQ(m.at("valence_accuracy"), 0.9);
  EXPECT_DOUBLE_EQ(m.at("arousal_accuracy"), 0.6);
  EXPECT_DOUBLE_EQ(m.at("va_mse"), 0.25);
  // F1: Q1 2·3/(3+4) = 6/7, Q2 2·2/(3+2) = 4/5, Q3 2·1/(2+2) = 1/2, Q4 1/2.
  EXPECT_NEAR(m.at("quadrant_macro_f1"), (6.0 / 7 + 0.8 + 0.5 + 0.5) / 4, 1e-12);
  EXPECT_EQ(m.at("confusion_Q1_Q2"), 1.0);
  EXPECT_EQ(m.at("confusion_Q4_Q3"), 1.0);
  EXPECT_DOUBLE_EQ(m.at("valence_positive_share"), 0.4);
  EXPECT_DOUBLE_EQ(m.at("quadrant_valence_positive_share"), 0.6);
}

TEST(EmotionTask, FeatureStatisticsComeFromTheTrainSplitOnly) {
  auto task = make(task_config("features"));
  const auto* train = task->emotion_dataset(Split::kTrain);
  const auto* test = task->emotion_dataset(Split::kTest);
  const size_t f = 81;  // mean velocity (EMOPIA clips all share one tempo)
  double sum = 0.0, sq = 0.0, all = 0.0;
  for (const auto& c : train->clips()) sum += c.features[f];
  const double mean = sum / static_cast<double>(train->size());
  for (const auto& c : train->clips()) sq += (c.features[f] - mean) * (c.features[f] - mean);
  for (const auto& c : test->clips()) all += c.features[f];
  const double std = std::sqrt(sq / static_cast<double>(train->size()));
  auto model = task->emotion_model();
  EXPECT_NEAR(model->feature_mean[f].item<double>(), mean, 1e-5);
  EXPECT_NEAR(model->feature_std[f].item<double>(), std, 1e-5);
  const double with_test = (sum + all) / static_cast<double>(train->size() + test->size());
  EXPECT_GT(std::abs(with_test - mean), 1e-6);  // the test split would have moved it
  // Named buffers travel with checkpoints and exports.
  bool found = false;
  for (const auto& b : task->model().named_buffers()) found |= b.key() == "model.feature_mean";
  EXPECT_TRUE(found);
}

std::string start_up_error(const std::string& loss) {
  try {
    make(task_config("features", "", loss));
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(EmotionTask, HeadsThatDoNotFitAreStartUpErrorsNamingTheHead) {
  const std::string floats_into_ce = start_up_error(
      "loss: {heads: [{name: quadrant, target: valence_arousal, task: classification, num_classes: 4}]}\n");
  EXPECT_NE(floats_into_ce.find("loss.heads: head 'quadrant' (classification, cross_entropy): needs integer class ids"),
            std::string::npos)
      << floats_into_ce;
  EXPECT_NE(floats_into_ce.find("(checked on the train split at start-up)"), std::string::npos) << floats_into_ce;
  const std::string classes = start_up_error("loss: {heads: [{name: quadrant, task: classification, num_classes: 3}]}\n");
  EXPECT_NE(classes.find("head 'quadrant' (classification, cross_entropy): output [8, 4] and target [8] do not fit"),
            std::string::npos)
      << classes;
  const std::string ids_into_mse =
      start_up_error("loss: {heads: [{name: valence_arousal, target: quadrant, task: regression}]}\n");
  EXPECT_NE(ids_into_mse.find("head 'valence_arousal' (regression, mse): needs floating-point targets"),
            std::string::npos)
      << ids_into_mse;
  const std::string shape =
      start_up_error("loss: {heads: [{name: quadrant, target: valence_arousal, task: regression}]}\n");
  EXPECT_NE(shape.find("head 'quadrant' (regression, mse): output [8, 4] and target [8, 2] differ in shape"),
            std::string::npos)
      << shape;
  const std::string unknown = start_up_error("loss: {heads: [{name: valence, task: regression}]}\n");
  EXPECT_NE(unknown.find("head 'valence' (regression, mse): the model has no output 'valence'; outputs are "
                         "valence_arousal, quadrant"),
            std::string::npos)
      << unknown;
}

TEST(EmotionTask, PredictsUnlabelledClips) {
  const std::string dir = test::scratch_dir("emotion_predict");
  fs::copy_file(test::emopia_midi_root() + "/Q2_ItGNJM6skM4_1.mid", dir + "/one.mid");
  fs::copy_file(test::emopia_midi_root() + "/Q4_--2B4d4lQhs_3.mid", dir + "/two.mid");
  auto task = make(task_config("both", "  unlabelled_test: " + dir + "\n"));
  auto test = task->dataset(Split::kTest);
  ASSERT_EQ(test->size(), 2u);
  EXPECT_FALSE(test->has_targets());
  EXPECT_TRUE(task->dataset(Split::kValidation)->has_targets());
  task->model().eval();
  torch::NoGradGuard no_grad;
  const data::NamedTensors p = task->predict(test->get_batch({0, 1}));
  EXPECT_EQ(p.names(), (std::vector<std::string>{"valence_arousal", "quadrant", "quadrant_probabilities"}));
  const at::Tensor probabilities = p.at("quadrant_probabilities");
  EXPECT_TRUE(torch::allclose(probabilities.sum(-1), torch::ones({2}), 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(p.at("quadrant"), probabilities.argmax(-1) + 1));
  EXPECT_LE(p.at("valence_arousal").abs().max().item<float>(), 1.0f);
}

class EmotionGraphs : public ::testing::TestWithParam<std::string> {};

TEST_P(EmotionGraphs, MatchOnnxRuntimeAtEveryParityShape) {
  auto task = make(task_config(GetParam()));
  const std::vector<GraphExport> graphs = task->graphs();
  ASSERT_EQ(graphs.size(), 1u);
  const GraphExport& g = graphs[0];
  EXPECT_EQ(g.registry_task, "emotion_embedding");
  EXPECT_EQ(g.registry_output_size, 6);
  EXPECT_EQ(g.registry_input_size, GetParam() == "tokens" ? 48 : 128);
  const std::string path = test::scratch_dir("emotion_graph_" + GetParam()) + "/emotion.onnx";
  test::write_checked_graph(g, path);
  const auto info = onnx::read_model_info(path);
  EXPECT_EQ(info.output_names(), (std::vector<std::string>{"valence_arousal", "quadrant"}));
  if (GetParam() != "features") EXPECT_EQ(info.metadata_value("kmidi.special_token.pad"), std::optional<std::string>("0"));
  // Graphs that read features carry their layout (docs/emotion_features.md).
  EXPECT_EQ(info.metadata_value("kmidi.emotion.feature_layout"),
            GetParam() == "tokens" ? std::optional<std::string>()
                                   : std::optional<std::string>(features::emotion_feature_layout_json()));
  // No data.normalise: the runtime is told to edit nothing.
  EXPECT_EQ(info.metadata_value("kmidi.emotion.normalise"), std::optional<std::string>(""));
  for (const auto& [batch, length] : g.parity_shapes) {
    const data::NamedTensors in = g.sample_inputs(batch, length, 7);
    onnx::onnxruntime_parity(path, in, g.reference(in))
        .require_passed("emotion " + GetParam() + " batch " + std::to_string(batch));
  }
}

INSTANTIATE_TEST_SUITE_P(Inputs, EmotionGraphs, ::testing::Values("features", "tokens", "both"),
                         [](const auto& info) { return info.param; });

TEST(EmotionTask, LegacySlotGraphIsStaticAndCarriesValenceAndArousalInItsBlocks) {
  auto task = make(task_config("features", "", std::string(kHeads) + "export: {legacy_slot: true}\n"));
  const std::vector<GraphExport> graphs = task->graphs();
  ASSERT_EQ(graphs.size(), 2u);
  const GraphExport& g = graphs[1];
  EXPECT_EQ(g.file_stem, "emotionrecognizer");
  EXPECT_EQ(g.registry_input_size, 128);
  EXPECT_EQ(g.registry_output_size, 64);
  const std::string path = test::scratch_dir("emotion_legacy") + "/emotionrecognizer.onnx";
  test::write_checked_graph(g, path);

  // What the legacy loader reads: input 0 and output 0, float32, static [1, N].
  const auto info = onnx::read_model_info(path);
  ASSERT_EQ(info.input_names(), std::vector<std::string>{"input"});
  ASSERT_EQ(info.output_names(), std::vector<std::string>{"output"});
  EXPECT_EQ(onnx::shape_to_string(info.inputs[0].shape), onnx::shape_to_string(onnx::Shape{1, 128}));
  EXPECT_EQ(onnx::shape_to_string(info.outputs[0].shape), onnx::shape_to_string(onnx::Shape{1, 64}));
  EXPECT_EQ(info.inputs[0].dtype, onnx::DType::kFloat32);
  EXPECT_EQ(info.outputs[0].dtype, onnx::DType::kFloat32);
  EXPECT_EQ(info.metadata_value(onnx::meta::kProfile), std::optional<std::string>("legacy"));
  EXPECT_EQ(info.metadata_value("kmidi.emotion.feature_layout"),
            std::optional<std::string>(features::emotion_feature_layout_json()));

  // onnxruntime's output against the model's own valence and arousal on real clips.
  const data::Batch batch = task->dataset(Split::kTest)->get_batch({0, 1, 2});
  task->model().eval();
  for (int64_t r = 0; r < 3; ++r) {
    const at::Tensor features = batch.inputs.at("features").narrow(0, r, 1);
    at::Tensor va;
    {
      torch::NoGradGuard no_grad;
      va = std::get<0>(task->emotion_model()->forward({}, {}, features));
    }
    data::NamedTensors in;
    in.set("input", features);
    const at::Tensor out = onnx::run_onnxruntime(path, in).at("output");
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, 64}));
    for (int64_t i = 0; i < 16; ++i) {
      EXPECT_NEAR(out[0][i].item<float>(), va[0][0].item<float>(), 1e-5) << "valence block, row " << r;
      EXPECT_NEAR(out[0][16 + i].item<float>(), va[0][1].item<float>(), 1e-5) << "arousal block, row " << r;
    }
    EXPECT_EQ(out[0].narrow(0, 32, 32).abs().max().item<float>(), 0.0f) << "dominance and complexity are not predicted";
  }
}

TEST(EmotionTask, BothGraphsTellTheRuntimeTheNormalisationTheModelWasTrainedWith) {
  // Trained on normalised clips, the model is wrong on raw ones: the runtime
  // must apply the same edits before computing features (docs/emotion_features.md).
  const std::string spec = "velocity_mean:64,tempo_flat:120";
  auto task = make(task_config("features", "  normalise: " + spec + "\n",
                               std::string(kHeads) + "export: {legacy_slot: true}\n"));
  const std::vector<GraphExport> graphs = task->graphs();
  ASSERT_EQ(graphs.size(), 2u);
  const std::string dir = test::scratch_dir("emotion_graph_normalise");
  for (const GraphExport& g : graphs) {
    const std::string path = dir + "/" + (g.suffix.empty() ? std::string("emotion") : g.suffix) + ".onnx";
    test::write_checked_graph(g, path);
    EXPECT_EQ(onnx::read_model_info(path).metadata_value("kmidi.emotion.normalise"), std::optional<std::string>(spec))
        << path;
  }
  // "none" normalises nothing: an empty value, as without the key.
  auto none = make(task_config("tokens", "  normalise: none\n"));
  EXPECT_EQ(none->graphs().at(0).metadata.at("kmidi.emotion.normalise"), "");
}

TEST(EmotionTask, LegacySlotNeedsTheFeaturesAlone) {
  try {
    task_config("tokens", "", std::string(kHeads) + "export: {legacy_slot: true}\n");
    FAIL() << "a token model does not fit the 128-feature slot";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("legacy_slot"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("emotion.yaml"), std::string::npos) << e.what();
  }
}

/// A job config of the emotion task in `dir`, as a user writes it.
std::string write_job(const std::string& dir, const std::string& extra_data) {
  const std::string path = dir + "/emotion.yaml";
  files::write_atomic(path, "task: emotion\nrun: {name: tiny, output_dir: " + dir + "/runs, tensorboard: false}\n"
                            "train: {max_steps: 12, batch_size: 16, log_every: 4, eval_every: 6, eval_max_batches: 2, "
                            "optimizer: {lr: 0.003}, early_stopping: {monitor: quadrant_accuracy, mode: max}}\n"
                            "data:\n  prepared: " + test::emopia_prepared_dir() + "\n  midi_root: " +
                            test::emopia_midi_root() + "\n  feature_cache: " + dir + "/features.cache\n" + extra_data +
                            "model: {hidden: 32}\n" + kHeads);
  return path;
}

TEST(EmotionTask, TrainsWritesACheckpointAndEvaluatesWithAndWithoutLabels) {
  const std::string dir = test::scratch_dir("emotion_job");
  const std::string config = write_job(dir, "");
  auto job = load_job_config(config, {}, builtin_tasks());
  const TrainResult trained = run_training(*job, builtin_tasks());
  EXPECT_EQ(trained.step, 12);
  const std::string best = dir + "/runs/tiny/checkpoints/best.ckpt";
  ASSERT_TRUE(fs::exists(best));
  EXPECT_TRUE(fs::exists(dir + "/runs/tiny/checkpoints/emotion_inputs.json"));

  EvaluateOptions options;
  options.checkpoint = best;
  options.split = "test";
  auto labelled_job = load_job_config(config, {}, builtin_tasks());
  const EvaluateOutcome labelled = run_evaluation(*labelled_job, builtin_tasks(), options);
  EXPECT_TRUE(labelled.result.labelled);
  EXPECT_EQ(labelled.result.items, 88);
  for (const char* metric : {"quadrant_accuracy", "quadrant_macro_f1", "valence_accuracy", "arousal_accuracy", "va_mse",
                             "confusion_Q3_Q3"}) {
    EXPECT_EQ(labelled.result.metrics.count(metric), 1u) << metric;
  }

  const std::string folder = dir + "/unlabelled";
  fs::create_directories(folder);
  for (const char* clip : {"Q1_0vLPYiPN7qY_0.mid", "Q2_ItGNJM6skM4_1.mid", "Q3_0EWWyyV7RJA_0.mid"}) {
    fs::copy_file(test::emopia_midi_root() + "/" + clip, folder + "/" + clip);
  }
  auto unlabelled_job = load_job_config(config, {"data.unlabelled_test=" + folder}, builtin_tasks());
  const EvaluateOutcome unlabelled = run_evaluation(*unlabelled_job, builtin_tasks(), options);
  EXPECT_FALSE(unlabelled.result.labelled);
  EXPECT_TRUE(unlabelled.result.metrics.empty());
  ASSERT_FALSE(unlabelled.predictions_path.empty());
  std::ifstream in(unlabelled.predictions_path);
  std::string line;
  std::vector<std::string> ids;
  while (std::getline(in, line)) {
    const auto row = nlohmann::json::parse(line);
    ids.push_back(row.at("id").get<std::string>());
    EXPECT_GE(row.at("quadrant").get<int>(), 1);
    EXPECT_LE(row.at("quadrant").get<int>(), 4);
    EXPECT_EQ(row.at("quadrant_probabilities").size(), 4u);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"Q1_0vLPYiPN7qY_0.mid", "Q2_ItGNJM6skM4_1.mid", "Q3_0EWWyyV7RJA_0.mid"}));
}

}  // namespace
}  // namespace kmidi::train
