// Issue 18 point 6 on real EMOPIA: training augmentation (data.augment)
// changes the clips per epoch and resumes bit-exactly; data.test_perturb
// perturbs the test clips before their features are computed, is validated
// as a config error, and kmidi evaluate measures a model under it.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "core/Config.h"
#include "core/Files.h"
#include "datasets/features/ScorePerturbation.h"
#include "datasets/midi/MidiReader.h"
#include "tests/datasets/EmopiaPrepared.h"
#include "tests/support/TestSupport.h"
#include "train/Checkpoint.h"
#include "train/Job.h"
#include "train/tasks/Tasks.h"
#include "train/Trainer.h"
#include "train/tasks/EmotionTask.h"

namespace fs = std::filesystem;

namespace kmidi::train {
namespace {

const char* kAugment =
    "  augment: {transpose: [-3, 3], tempo_scale: [0.8, 1.25], velocity_flatten_p: 0.5, pedal_removal_p: 0.3, "
    "pedal_bake_p: 0.3, crop_s: [8, 20], crop_p: 0.3}\n";

/// A job of the emotion task in `dir`: 128-clip batches, so 7 steps make an epoch of EMOPIA's 876 training clips.
std::string write_job(const std::string& dir, const std::string& extra_data) {
  const std::string path = dir + "/emotion.yaml";
  files::write_atomic(path, "task: emotion\nrun: {name: tiny, output_dir: " + dir + "/runs, tensorboard: false}\n"
                            "train: {seed: 5, max_steps: 10, batch_size: 128, log_every: 5, eval_every: 5, "
                            "eval_max_batches: 1, checkpoint_every: 5, optimizer: {lr: 0.003}}\n"
                            "data:\n  prepared: " + test::emopia_prepared_dir() + "\n  midi_root: " +
                            test::emopia_midi_root() + "\n" + extra_data +  // the shared default feature cache
                            "model: {hidden: 32}\n"
                            "loss:\n  heads:\n    - {name: quadrant, task: classification, num_classes: 4}\n"
                            "    - {name: valence_arousal, task: regression}\n");
  return path;
}

std::unique_ptr<EmotionTask> make_task(JobConfig& job) {
  torch::manual_seed(static_cast<uint64_t>(job.train.seed));
  TaskContext context;
  context.seed = static_cast<uint64_t>(job.train.seed);
  return std::make_unique<EmotionTask>(static_cast<EmotionTaskConfig&>(*job.task_config), context);
}

struct StopAt final : TrainingObserver {
  explicit StopAt(int64_t s) : step(s) {}
  void after_step(Trainer& t, const StepReport& r) override {
    if (r.step == step) t.request_stop("test: stop at step " + std::to_string(step));
  }
  int64_t step;
};

TrainResult train(EmotionTask& task, const JobConfig& job, const std::string& dir,
                  std::shared_ptr<TrainingObserver> observer = nullptr) {
  TrainerOptions options;
  options.run_dir = dir;
  options.task_name = "emotion";
  options.config_yaml = "test config\n";
  options.tensorboard = false;
  Trainer trainer(task, job.train, options, DistributedContext::create(DistributedConfig{}, "cpu"));
  if (observer) trainer.add_observer(observer);
  return trainer.fit();
}

std::vector<at::Tensor> parameters(torch::nn::Module& m) {
  std::vector<at::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}

TEST(EmotionRobustness, AugmentedClipsChangePerEpochAndAResumedRunIsBitExact) {
  const std::string dir = test::scratch_dir("emotion_augment_resume");
  auto job = load_job_config(write_job(dir, kAugment), {}, builtin_tasks());
  auto straight = make_task(*job);
  train(*straight, *job, dir + "/straight");

  auto first = make_task(*job);
  ASSERT_EQ(train(*first, *job, dir + "/resumed", std::make_shared<StopAt>(5)).step, 5);
  torch::manual_seed(999);  // another initialisation: the weights must come from the checkpoint
  auto second = make_task(*job);
  EXPECT_EQ(train(*second, *job, dir + "/resumed").step, 10);  // crosses into epoch 1 at step 7
  const auto a = parameters(straight->model()), b = parameters(second->model());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;

  // The augmentation is real: clip 0's features differ between epochs and
  // from the unaugmented (cached) ones, and a draw repeats within an epoch.
  auto data = straight->dataset(Split::kTrain);
  const at::Tensor clean = torch::from_blob(const_cast<float*>(straight->emotion_dataset(Split::kTrain)->clips()[0].features.data()),
                                            {128}, torch::kFloat).clone();
  std::vector<at::Tensor> per_epoch;
  for (int64_t epoch = 0; epoch < 4; ++epoch) {
    data->set_epoch(epoch);
    per_epoch.push_back(data->get_batch({0, 1}).inputs.at("features")[0].clone());
    EXPECT_TRUE(torch::equal(per_epoch.back(), data->get_batch({0}).inputs.at("features")[0]));
  }
  int changed = 0;
  for (const auto& f : per_epoch) changed += !torch::equal(f, clean);
  EXPECT_GE(changed, 3);
  EXPECT_FALSE(torch::equal(per_epoch[0], per_epoch[1]) && torch::equal(per_epoch[1], per_epoch[2]));
}

TEST(EmotionRobustness, TestPerturbationAppliesBeforeFeaturesAndBadSpecsAreConfigErrors) {
  const std::string dir = test::scratch_dir("emotion_test_perturb");
  const std::string config = write_job(dir, "  test_perturb: no_pedal,velocity_flat:80\n");
  auto job = load_job_config(config, {}, builtin_tasks());
  auto task = make_task(*job);
  const data::EmotionDataset* test_split = task->emotion_dataset(Split::kTest);
  ASSERT_EQ(test_split->size(), 88u);
  // Reference: the first test clip's file, perturbed and featurised here.
  const auto& clip = test_split->clips()[0];
  const midi::Score score = midi::read_midi_file(test::emopia_midi_root() + "/" + clip.id);
  const features::EmotionFeatures expected = features::emotion_features(
      features::set_velocities(features::remove_pedal(score), 80));
  for (size_t k = 0; k < features::kEmotionFeatureSize; ++k) EXPECT_FLOAT_EQ(clip.features[k], expected[k]) << k;
  EXPECT_FLOAT_EQ(clip.features[81], 80.0f / 127.0f);  // velocity mean
  EXPECT_FLOAT_EQ(clip.features[82], 0.0f);             // velocity std
  EXPECT_FLOAT_EQ(clip.features[108], 0.0f);            // pedal down share
  // The train split is untouched (features from the cache, pedal present somewhere).
  double pedal = 0;
  for (const auto& c : task->emotion_dataset(Split::kTrain)->clips()) pedal += c.features[108];
  EXPECT_GT(pedal, 0.0);

  for (const std::string& bad : {"velocity_flat:300", "shuffle", "transpose"}) {
    try {
      load_job_config(config, {"data.test_perturb=" + bad}, builtin_tasks());
      ADD_FAILURE() << bad << " was accepted";
    } catch (const config::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("test_perturb"), std::string::npos) << e.what();
    }
  }
  try {
    load_job_config(config, {"data.augment.transpose=[2, -2]"}, builtin_tasks());
    ADD_FAILURE() << "a reversed transpose range was accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("data.augment.transpose"), std::string::npos) << e.what();
  }
}

TEST(EmotionRobustness, EvaluateMeasuresATinyModelUnderAPerturbation) {
  const std::string dir = test::scratch_dir("emotion_evaluate_perturb");
  const std::string config = write_job(dir, "");
  auto job = load_job_config(config, {"train.max_steps=4"}, builtin_tasks());
  const TrainResult trained = run_training(*job, builtin_tasks());
  EvaluateOptions options;
  options.checkpoint = trained.last_checkpoint;
  options.split = "test";

  auto clean_job = load_job_config(config, {}, builtin_tasks());
  const EvaluateOutcome clean = run_evaluation(*clean_job, builtin_tasks(), options);
  auto flat_job = load_job_config(config, {"data.test_perturb=velocity_flat:80"}, builtin_tasks());
  const EvaluateOutcome flat = run_evaluation(*flat_job, builtin_tasks(), options);
  ASSERT_TRUE(flat.result.labelled);
  EXPECT_EQ(flat.result.items, 88);

  // Reference: the same checkpoint's predictions on the perturbed test clips, counted here.
  auto task = make_task(*flat_job);
  NamedTensorList target;
  for (const auto& item : task->model().named_parameters(true)) target.emplace_back(item.key(), item.value());
  for (const auto& item : task->model().named_buffers(true)) target.emplace_back(item.key(), item.value());
  const CheckpointFile file(options.checkpoint);
  load_named_tensors(file.tensors(checkpoint_section::kModel), target, "model");
  task->model().eval();
  torch::NoGradGuard no_grad;
  const data::EmotionDataset* test_split = task->emotion_dataset(Split::kTest);
  std::vector<int64_t> all(test_split->size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  const data::NamedTensors p = task->predict(test_split->get_batch(all));
  const double positive = p.at("valence_arousal").select(1, 0).ge(0).to(torch::kDouble).mean().item<double>();
  const at::Tensor q = p.at("quadrant");
  const double quadrant_positive = q.eq(1).logical_or(q.eq(4)).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(flat.result.metrics.at("valence_positive_share"), positive, 1e-9);
  EXPECT_NEAR(flat.result.metrics.at("quadrant_valence_positive_share"), quadrant_positive, 1e-9);
  // The perturbation reached the model: some output moved.
  EXPECT_NE(flat.result.metrics.at("loss"), clean.result.metrics.at("loss"));
}

}  // namespace
}  // namespace kmidi::train
