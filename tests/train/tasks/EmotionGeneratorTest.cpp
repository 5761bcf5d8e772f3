// The training side of the emotion-conditioned generator (issue 18):
// train.init_from (weights only; refusals naming both sides), EMOPIA's
// quadrant labels in the generator's batches against EMOPIA's own label.csv,
// condition dropout (share, determinism, exact resume), the conditioning
// reaching the logits, and scripts/train_emotion_generator.sh end to end.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Strings.h"
#include "datasets/TokenDataset.h"
#include "datasets/corpus/Prepare.h"
#include "datasets/corpus/PrepareConfig.h"
#include "datasets/shards/ShardReader.h"
#include "datasets/shards/ShardWriter.h"
#include "tests/datasets/EmopiaPrepared.h"
#include "tests/support/TestSupport.h"
#include "train/Checkpoint.h"
#include "train/InitFrom.h"
#include "train/Job.h"
#include "train/Schedule.h"
#include "train/tasks/Tasks.h"
#include "train/tasks/MidiGeneratorTask.h"

namespace kmidi::train {
namespace {
namespace fs = std::filesystem;
using test::ScratchLifetime;

const char* kTinyConfig = "configs/midi_generator_tiny.yaml";

/// The repo's POP909 sample prepared once per process (no emotion labels).
const std::string& pop909_shards() {
  static std::string dir;
  static std::once_flag once;
  std::call_once(once, [] {
    dir = test::scratch_dir("eg_pop909", ScratchLifetime::kProgram);
    corpus::run_prepare(corpus::load_prepare_config(test::source_path("configs/prepare_pop909_sample.yaml"),
                                                    {"output.dir=" + dir}));
  });
  return dir;
}

/// EMOPIA's label.csv read independently of kmidi's corpus code: clip ID -> quadrant.
std::map<std::string, int> emopia_quadrants() {
  std::ifstream in(test::shared_data("emopia/EMOPIA_1.0/label.csv"));
  std::string line;
  std::getline(in, line);  // ID,4Q,annotator
  std::map<std::string, int> out;
  while (std::getline(in, line)) {
    std::stringstream row(line);
    std::string id, q;
    std::getline(row, id, ',');
    std::getline(row, q, ',');
    if (!id.empty()) out[id] = std::stoi(q);
  }
  return out;
}

float valence_sign(int quadrant) { return quadrant == 1 || quadrant == 4 ? 1.0f : -1.0f; }
float arousal_sign(int quadrant) { return quadrant <= 2 ? 1.0f : -1.0f; }

/// 24 EMOPIA clips of 24 songs, 6 per quadrant, prepared with
/// configs/prepare_emopia.yaml's labels and tokenizer into one train split.
const std::string& emopia_subset_shards() {
  static std::string dir;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string work = test::scratch_dir("eg_emopia_subset", ScratchLifetime::kProgram);
    std::ifstream in(test::shared_data("emopia/EMOPIA_1.0/label.csv"));
    std::string line;
    std::getline(in, line);
    std::ofstream csv(work + "/label.csv");
    csv << "ID,4Q,annotator,split\n";
    std::set<std::string> songs;
    std::map<char, int> per_quadrant;
    while (std::getline(in, line)) {
      const std::string id = line.substr(0, line.find(','));
      const std::string song = id.substr(3, id.rfind('_') - 3);
      if (per_quadrant[id[1]] == 6 || !songs.insert(song).second) continue;
      ++per_quadrant[id[1]];
      csv << line << ",train\n";
    }
    csv.close();
    dir = work + "/prepared";
    corpus::run_prepare(corpus::load_prepare_config(
        test::source_path("configs/prepare_emopia.yaml"),
        {"data_root=" + std::string(KMIDI_SHARED_DATA), "corpus.manifest.path=" + work + "/label.csv",
         "corpus.manifest.split_column=split", "split.method=manifest", "split.names=[train]", "split.files=[]",
         "output.dir=" + dir, "num_workers=2"}));
  });
  return dir;
}

std::unique_ptr<JobConfig> tiny_job(const std::string& out, const std::string& data, std::vector<std::string> overrides = {}) {
  overrides.insert(overrides.begin(), {"data.dir=" + data, "run.output_dir=" + out, "run.tensorboard=false"});
  return load_job_config(test::source_path(kTinyConfig), overrides, builtin_tasks());
}

std::unique_ptr<MidiGeneratorTask> make_generator(JobConfig& job, uint64_t seed = 3) {
  torch::manual_seed(seed);
  TaskContext context;
  context.seed = static_cast<uint64_t>(job.train.seed);
  return std::make_unique<MidiGeneratorTask>(static_cast<MidiGeneratorJobConfig&>(*job.task_config), context);
}

NamedTensorList weights_of(torch::nn::Module& m) {
  NamedTensorList out;
  for (const auto& item : m.named_parameters(true)) out.emplace_back(item.key(), item.value().detach().clone());
  for (const auto& item : m.named_buffers(true)) out.emplace_back(item.key(), item.value().detach().clone());
  return out;
}

bool bit_equal(const NamedTensorList& a, const NamedTensorList& b) {
  std::map<std::string, at::Tensor> by_name(b.begin(), b.end());
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    if (!by_name.count(name) || !torch::equal(t, by_name.at(name))) return false;
  }
  return true;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a UsageError";
  return "";
}

/// A tiny run of `steps` on the POP909 sample; its last checkpoint.
std::string trained_checkpoint(const std::string& out, int steps) {
  auto job = tiny_job(out, pop909_shards(),
                      {"run.name=source", "train.max_steps=" + std::to_string(steps), "train.eval_every=0",
                       "train.checkpoint_every=" + std::to_string(steps)});
  return run_training(*job, builtin_tasks()).last_checkpoint;
}

// ---------------------------------------------------------------------------
// train.init_from

TEST(InitFrom, LoadsTheWeightsOnlyAndStartsOptimizerScheduleAndDataAfresh) {
  const std::string out = test::scratch_dir("eg_init_from");
  const std::string source = trained_checkpoint(out, 6);  // ends inside epoch 1
  const std::vector<std::string> init = {"run.name=tuned", "train.init_from=" + source, "train.max_steps=2",
                                         "train.checkpoint_every=1", "train.eval_every=0"};
  {
    auto job = tiny_job(out, pop909_shards(), init);
    auto task = make_generator(*job, 99);  // another initialisation: the weights must come from the file
    const InitFromResult loaded = load_init_from(*task, *job, builtin_tasks());
    EXPECT_EQ(loaded.step, 6);
    EXPECT_TRUE(bit_equal(weights_of(task->model()), CheckpointFile(source).tensors(checkpoint_section::kModel)));
  }
  auto job = tiny_job(out, pop909_shards(), init);
  const TrainResult r = run_training(*job, builtin_tasks());
  EXPECT_EQ(r.step, 2);
  const CheckpointFile first(out + "/tuned/checkpoints/step-0000000001.ckpt");
  int64_t counters = 0;
  for (const auto& [name, t] : first.tensors(checkpoint_section::kOptimizer)) {
    if (!strings::ends_with(name, ".step")) continue;
    EXPECT_EQ(t.item<int64_t>(), 1) << name << ": AdamW must start afresh (the source took 6 steps)";
    ++counters;
  }
  EXPECT_GT(counters, 0);
  const auto meta = nlohmann::json::parse(first.bytes(checkpoint_section::kMeta));
  EXPECT_EQ(meta.at("step").get<int64_t>(), 1);
  EXPECT_EQ(meta.at("epoch").get<int64_t>(), 0);
  EXPECT_EQ(meta.at("step_in_epoch").get<int64_t>(), 1);
  const LrSchedule fresh(job->train.schedule, job->train.optimizer.lr, 2);
  EXPECT_DOUBLE_EQ(meta.at("schedule").at("next_lr").get<double>(), fresh.lr(1));

  // A run that resumes ignores init_from: a missing file is never opened.
  auto again = tiny_job(out, pop909_shards(),
                        {"run.name=tuned", "train.init_from=" + out + "/no-such.ckpt", "train.max_steps=3",
                         "train.checkpoint_every=1", "train.eval_every=0"});
  EXPECT_EQ(run_training(*again, builtin_tasks()).step, 3);
}

TEST(InitFrom, TakesTheWeightAverageWhenTheCheckpointHasOne) {
  const std::string out = test::scratch_dir("eg_init_ema");
  auto source_job = tiny_job(out, pop909_shards(),
                             {"run.name=source", "train.max_steps=4", "train.eval_every=0", "train.checkpoint_every=4",
                              "train.ema.decay=0.5"});
  const std::string source = run_training(*source_job, builtin_tasks()).last_checkpoint;
  const CheckpointFile file(source);
  ASSERT_TRUE(file.has(checkpoint_section::kEma));
  auto job = tiny_job(out, pop909_shards(), {"run.name=tuned", "train.init_from=" + source});
  auto task = make_generator(*job, 99);
  EXPECT_TRUE(load_init_from(*task, *job, builtin_tasks()).used_ema);
  NamedTensorList params;
  for (const auto& item : task->model().named_parameters(true)) params.emplace_back(item.key(), item.value().detach());
  EXPECT_TRUE(bit_equal(params, file.tensors(checkpoint_section::kEma)));
  // ... which differs from the raw weights after 4 steps at decay 0.5.
  int64_t differing = 0;
  for (const auto& [name, raw] : file.tensors(checkpoint_section::kModel)) {
    for (const auto& [param, value] : params) differing += param == name && !torch::equal(raw, value);
  }
  EXPECT_GT(differing, 0);
}

TEST(InitFrom, RefusesAnotherArchitectureNamingCheckpointConfigKeyAndBothValues) {
  const std::string out = test::scratch_dir("eg_init_arch");
  const std::string source = trained_checkpoint(out, 2);
  const std::string config = test::source_path(kTinyConfig);
  auto wider = tiny_job(out, pop909_shards(), {"run.name=wider", "train.init_from=" + source, "model.d_model=64"});
  const std::string m = message_of([&] { run_training(*wider, builtin_tasks()); });
  EXPECT_NE(m.find(source), std::string::npos) << m;
  EXPECT_NE(m.find(config), std::string::npos) << m;
  EXPECT_NE(m.find("model.d_model is 32 in the checkpoint's config and 64 in the job's"), std::string::npos) << m;
  EXPECT_FALSE(fs::exists(out + "/wider")) << "a refused start must write nothing";
  // Another head count leaves every tensor's shape alone and is refused all the same.
  auto heads = tiny_job(out, pop909_shards(), {"run.name=heads", "train.init_from=" + source, "model.n_heads=4"});
  const std::string h = message_of([&] { run_training(*heads, builtin_tasks()); });
  EXPECT_NE(h.find("model.n_heads is 2 in the checkpoint's config and 4 in the job's"), std::string::npos) << h;
  // Regularisation may change between pre-training and fine-tuning.
  auto regularised = tiny_job(out, pop909_shards(),
                              {"train.init_from=" + source, "model.dropout=0.3", "model.condition_dropout=0.2"});
  auto task = make_generator(*regularised);
  EXPECT_NO_THROW(load_init_from(*task, *regularised, builtin_tasks()));
}

TEST(InitFrom, RefusesAnotherTokenizerNamingTheDifferingKeys) {
  const std::string out = test::scratch_dir("eg_init_tokenizer");
  const std::string source = trained_checkpoint(out, 2);
  const std::string other = out + "/other-tokenizer";
  corpus::run_prepare(corpus::load_prepare_config(test::source_path("configs/prepare_pop909_sample.yaml"),
                                                  {"output.dir=" + other, "tokenizer.velocity_bins=16"}));
  auto job = tiny_job(out, other, {"run.name=other", "train.init_from=" + source});
  const std::string m = message_of([&] { run_training(*job, builtin_tasks()); });
  EXPECT_NE(m.find(source), std::string::npos) << m;
  EXPECT_NE(m.find(test::source_path(kTinyConfig)), std::string::npos) << m;
  EXPECT_NE(m.find("tokenizer.json"), std::string::npos) << m;
  EXPECT_NE(m.find("velocity_bins is 32 in the checkpoint and 16 in the job's"), std::string::npos) << m;
  EXPECT_FALSE(fs::exists(out + "/other/checkpoints")) << "nothing was trained";
}

TEST(InitFrom, TheCommandLineExitsWithTheUsageCode) {
  const std::string out = test::scratch_dir("eg_init_cli");
  const std::string source = trained_checkpoint(out, 2);
  const auto r = test::run_shell(test::shell_quote(KMIDI_CLI) + " train --config " +
                                 test::shell_quote(test::source_path(kTinyConfig)) + " " +
                                 test::shell_quote("data.dir=" + pop909_shards()) + " " +
                                 test::shell_quote("run.output_dir=" + out) + " run.name=cli " +
                                 test::shell_quote("train.init_from=" + source) + " model.d_ff=128 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.d_ff is 64 in the checkpoint's config and 128 in the job's"), std::string::npos)
      << r.output;
}

// ---------------------------------------------------------------------------
// Emotion labels

TEST(EmotionLabels, EveryEmopiaTrainingClipCarriesItsQuadrantFromEmopiasOwnLabelCsv) {
  const std::string out = test::scratch_dir("eg_emopia_labels");
  auto job = tiny_job(out, test::emopia_prepared_dir());
  auto task = make_generator(*job);
  const auto quadrants = emopia_quadrants();
  const auto data = task->dataset(Split::kTrain);
  ASSERT_EQ(data->size(), 876u);
  std::map<int, int> seen;
  for (size_t first = 0; first < data->size(); first += 64) {
    std::vector<int64_t> indices;
    for (size_t i = first; i < std::min(first + 64, data->size()); ++i) indices.push_back(static_cast<int64_t>(i));
    const data::Batch batch = data->get_batch(indices);
    const at::Tensor e = task->emotion_input(batch);
    ASSERT_EQ(e.sizes(), (at::IntArrayRef{static_cast<int64_t>(indices.size()), 64}));
    for (size_t r = 0; r < indices.size(); ++r) {
      const std::string id = data->item_id(static_cast<size_t>(indices[r]));  // "Q1_<song>_<n>.mid@<start>"
      const int q = quadrants.at(id.substr(0, id.find(".mid@")));
      const auto row = static_cast<int64_t>(r);
      EXPECT_FLOAT_EQ(e[row][0].item<float>(), 0.8f * valence_sign(q)) << id;
      EXPECT_FLOAT_EQ(e[row][1].item<float>(), 0.8f * arousal_sign(q)) << id;
      EXPECT_EQ(e[row].slice(0, 2).abs().sum().item<float>(), 0.0f) << id;
      ++seen[q];
    }
  }
  EXPECT_EQ(seen.size(), 4u);
}

TEST(EmotionLabels, PreparedEmopiaShardsFlagRealLabelsAndPop909ItemsAreNeutral) {
  const shards::ShardReader emopia(emopia_subset_shards() + "/train.h5");
  const int source = emopia.label_index(shards::kEmotionSourceLabel);
  ASSERT_GE(source, 0);
  ASSERT_EQ(emopia.size(), 24);
  for (int64_t i = 0; i < emopia.size(); ++i) {
    EXPECT_EQ(emopia.item(i).labels[static_cast<size_t>(source)].text, "real") << emopia.item(i).source;
  }
  // POP909 has no labels: its shards carry none and the model sees the zero vector.
  const shards::ShardReader pop(pop909_shards() + "/train.h5");
  EXPECT_LT(pop.label_index(shards::kEmotionSourceLabel), 0);
  auto job = tiny_job(test::scratch_dir("eg_pop_neutral"), pop909_shards());
  auto task = make_generator(*job);
  const data::Batch batch = task->dataset(Split::kTrain)->get_batch({0, 1, 2, 3});
  const at::Tensor e = task->emotion_input(batch);
  EXPECT_EQ(e.sizes(), (at::IntArrayRef{4, 64}));
  EXPECT_EQ(e.abs().sum().item<float>(), 0.0f);
}

TEST(EmotionLabels, TheSourceFlagDecidesRealPseudoAndAbsent) {
  const std::string dir = test::scratch_dir("eg_sources");
  const tokenizer::Tokenizer tok{tokenizer::TokenizerConfig{}};
  tok.save(dir + "/tokenizer.json");
  auto write = [&](const std::vector<std::string>& flags) {
    shards::ShardWriter w(dir + "/train.h5", "train", shards::ShardVocab{tok.vocab_size(), tok.pad_id(), tok.sha256()},
                          {{"valence", shards::LabelKind::kNumber},
                           {"arousal", shards::LabelKind::kNumber},
                           {shards::kEmotionSourceLabel, shards::LabelKind::kText}});
    for (size_t p = 0; p < flags.size(); ++p) {
      const std::vector<int32_t> ids = {tok.bos_id(), 100, 101, 102, tok.eos_id()};
      shards::ShardItem item;
      item.source = "piece" + std::to_string(p) + ".mid";
      item.sha256 = std::string(64, static_cast<char>('a' + p));
      item.labels = {shards::LabelValue::of(-1.0), shards::LabelValue::of(1.0), shards::LabelValue::of(flags[p])};
      w.add(ids.data(), ids.size(), item);
    }
    w.commit();
  };
  write({"real", "pseudo", ""});
  data::TokenDatasetConfig c;
  c.dir = dir;
  c.max_length = 8;
  c.emotion_scale = 0.5;
  const data::TokenShardDataset ds(c, "train");
  using Source = data::TokenShardDataset::EmotionSource;
  EXPECT_EQ(ds.emotion_source(0), Source::kReal);
  EXPECT_EQ(ds.emotion_source(1), Source::kPseudo);
  EXPECT_EQ(ds.emotion_source(2), Source::kNone);
  const at::Tensor e = ds.get_batch({0, 1, 2}).inputs.at("emotion");
  EXPECT_FLOAT_EQ(e[0][0].item<float>(), -0.5f);
  EXPECT_FLOAT_EQ(e[1][1].item<float>(), 0.5f);
  EXPECT_EQ(e[2].abs().sum().item<float>(), 0.0f) << "no label: neutral, whatever the numbers say";
  write({"real", "maybe"});
  try {
    data::TokenShardDataset bad(c, "train");
    FAIL() << "an unknown source must be refused";
  } catch (const DataError& err) {
    const std::string m = err.what();
    EXPECT_NE(m.find("piece1.mid"), std::string::npos) << m;
    EXPECT_NE(m.find("'maybe'"), std::string::npos) << m;
  }
}

// ---------------------------------------------------------------------------
// Condition dropout

std::set<int64_t> neutral_rows(const data::TokenShardDataset& ds, int64_t epoch) {
  ds.set_epoch(epoch);
  std::set<int64_t> out;
  for (size_t first = 0; first < ds.size(); first += 128) {
    std::vector<int64_t> indices;
    for (size_t i = first; i < std::min(first + 128, ds.size()); ++i) indices.push_back(static_cast<int64_t>(i));
    const at::Tensor e = ds.get_batch(indices).inputs.at("emotion");
    const at::Tensor zero = e.abs().sum(1) == 0;
    for (size_t r = 0; r < indices.size(); ++r) {
      if (zero[static_cast<int64_t>(r)].item<bool>()) out.insert(indices[r]);
    }
  }
  return out;
}

TEST(ConditionDropout, HidesAShareNearPDecidedBySeedEpochAndItemAlone) {
  data::TokenDatasetConfig c;
  c.dir = test::emopia_prepared_dir();
  c.max_length = 16;
  c.seed = 5;
  c.preload = true;
  c.emotion_scale = 0.8;
  c.condition_dropout = 0.25;
  const data::TokenShardDataset ds(c, "train");
  size_t hidden = 0, shown = 0;
  std::vector<std::set<int64_t>> epochs;
  for (int64_t epoch = 0; epoch < 5; ++epoch) {
    epochs.push_back(neutral_rows(ds, epoch));
    hidden += epochs.back().size();
    shown += ds.size();
    for (int64_t i : epochs.back()) EXPECT_TRUE(ds.condition_dropped(static_cast<size_t>(i)));
  }
  const double share = static_cast<double>(hidden) / static_cast<double>(shown);
  EXPECT_NEAR(share, 0.25, 0.03) << hidden << " of " << shown;  // 4,380 draws: sd 0.0065
  EXPECT_NE(epochs[0], epochs[1]) << "a new choice every epoch";
  // A fresh process at epoch 3 (a resumed run) makes the same choice; another seed another.
  const data::TokenShardDataset resumed(c, "train");
  EXPECT_EQ(neutral_rows(resumed, 3), epochs[3]);
  c.seed = 6;
  EXPECT_NE(neutral_rows(data::TokenShardDataset(c, "train"), 3), epochs[3]);
  // p = 0: every label passes through.
  c.condition_dropout = 0.0;
  EXPECT_TRUE(neutral_rows(data::TokenShardDataset(c, "train"), 3).empty());
}

TEST(ConditionDropout, ValidationAlwaysSeesTheLabels) {
  auto job = tiny_job(test::scratch_dir("eg_dropout_eval"), test::emopia_prepared_dir(), {"model.condition_dropout=0.5"});
  auto task = make_generator(*job);
  const auto validation = task->dataset(Split::kValidation);
  std::vector<int64_t> all(validation->size());
  std::iota(all.begin(), all.end(), 0);
  const at::Tensor e = validation->get_batch(all).inputs.at("emotion");
  EXPECT_EQ((e.abs().sum(1) == 0).sum().item<int64_t>(), 0);
}

struct StopAt final : TrainingObserver {
  explicit StopAt(int64_t s) : step(s) {}
  void after_step(Trainer& t, const StepReport& r) override {
    if (r.step == step) t.request_stop("test: stop at step " + std::to_string(step));
  }
  int64_t step;
};

TrainResult train_task(MidiGeneratorTask& task, const JobConfig& job, const std::string& dir,
                       std::shared_ptr<TrainingObserver> observer = nullptr) {
  TrainerOptions options;
  options.run_dir = dir;
  options.task_name = "midi_generator";
  options.config_yaml = "test config\n";
  options.tensorboard = false;
  Trainer trainer(task, job.train, options, DistributedContext::create(DistributedConfig{}, "cpu"));
  if (observer) trainer.add_observer(observer);
  return trainer.fit();
}

TEST(ConditionDropout, AResumedRunIsBitExact) {
  // 24 clips, 3 steps per epoch: 10 steps cross three epoch boundaries.
  const std::string out = test::scratch_dir("eg_dropout_resume");
  const std::vector<std::string> settings = {"model.condition_dropout=0.3", "train.max_steps=10",
                                             "train.checkpoint_every=2", "train.eval_every=0"};
  auto job = tiny_job(out, emopia_subset_shards(), settings);
  auto straight = make_generator(*job);
  train_task(*straight, *job, out + "/straight");
  auto first = make_generator(*job);
  ASSERT_EQ(train_task(*first, *job, out + "/resumed", std::make_shared<StopAt>(5)).step, 5);
  auto second = make_generator(*job, 12345);
  EXPECT_EQ(train_task(*second, *job, out + "/resumed").step, 10);
  EXPECT_TRUE(bit_equal(weights_of(straight->model()), weights_of(second->model())));
}

// ---------------------------------------------------------------------------
// The conditioning reaches the logits

std::map<std::string, at::Tensor> prefix_weight_grads(MidiGeneratorTask& task, const data::Batch& batch) {
  task.model().train();
  task.model().zero_grad();
  task.forward(batch, true).loss_sum.backward();
  std::map<std::string, at::Tensor> out;
  for (const auto& item : task.model().named_parameters(true)) {
    if (strings::ends_with(item.key(), "prefix.weight") || strings::ends_with(item.key(), "prefix.bias")) {
      out[item.key()] = item.value().grad().clone();
    }
  }
  return out;
}

TEST(Conditioning, OnlyLabelledItemsTeachTheEmotionProjection) {
  const std::string out = test::scratch_dir("eg_grads");
  auto labelled = tiny_job(out, emopia_subset_shards());
  auto emopia = make_generator(*labelled);
  const auto with_labels = prefix_weight_grads(*emopia, emopia->dataset(Split::kTrain)->get_batch({0, 6, 12, 18}));
  auto neutral = tiny_job(out, pop909_shards());
  auto pop = make_generator(*neutral);
  const auto without = prefix_weight_grads(*pop, pop->dataset(Split::kTrain)->get_batch({0, 1, 2, 3}));
  ASSERT_EQ(with_labels.size(), 4u);  // weight and bias of each of the 2 layers' prefix projections
  for (const auto& [name, grad] : with_labels) EXPECT_GT(grad.abs().sum().item<double>(), 0.0) << name;
  for (const auto& [name, grad] : without) {
    if (strings::ends_with(name, "weight")) {
      EXPECT_EQ(grad.abs().sum().item<double>(), 0.0) << name << ": neutral data must not move the emotion weights";
    } else {
      EXPECT_GT(grad.abs().sum().item<double>(), 0.0) << name;
    }
  }
}

/// Mean next-token NLL of every training clip's windows when each is
/// conditioned on `sign` x its own emotion vector.
double mean_nll(MidiGeneratorTask& task, const std::string& shards, float sign) {
  data::TokenDatasetConfig c;
  c.dir = shards;
  c.max_length = 64;
  c.windowing = "windows";
  c.emotion_scale = 0.8;
  const data::TokenShardDataset ds(c, "train");
  std::vector<int64_t> all(ds.size());
  std::iota(all.begin(), all.end(), 0);
  const data::Batch batch = ds.get_batch(all);
  torch::NoGradGuard no_grad;
  task.model().eval();
  const at::Tensor logits = task.generator()->forward(batch.inputs.at("input_ids"), sign * batch.inputs.at("emotion"),
                                                       batch.inputs.at("attention_mask"));
  const at::Tensor labels = batch.targets.at("labels").reshape(-1);
  const at::Tensor nll = torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), labels,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(task.tokenizer().pad_id()));
  return nll.item<double>();
}

TEST(Conditioning, TrainingOnLabelledClipsTiesTheLikelihoodToTheEmotion) {
  const std::string out = test::scratch_dir("eg_reaches_logits");
  auto job = tiny_job(out, emopia_subset_shards(),
                      {"model.d_model=64", "model.d_ff=128", "model.dropout=0", "data.max_length=64",
                       "train.max_steps=120", "train.eval_every=0", "train.checkpoint_every=120",
                       "train.optimizer.lr=3e-3", "train.precision=fp32"});  // the same numbers on every CPU
  auto task = make_generator(*job);
  const double gap_before =
      mean_nll(*task, emopia_subset_shards(), -1.0f) - mean_nll(*task, emopia_subset_shards(), 1.0f);
  train_task(*task, *job, out + "/run");
  const double own = mean_nll(*task, emopia_subset_shards(), 1.0f);
  const double opposite = mean_nll(*task, emopia_subset_shards(), -1.0f);
  // The opposite quadrant's vector must make the clips clearly less likely than their own.
  // (120 steps give 0.0147 nats per token here, against 0.00005 at initialisation.)
  EXPECT_GT(opposite - own, 0.01) << "own " << own << ", opposite " << opposite << ", gap before " << gap_before;
  EXPECT_GT(opposite - own, 50 * std::abs(gap_before)) << "own " << own << ", opposite " << opposite;
}

// ---------------------------------------------------------------------------
// The recipe

TEST(Recipe, QuickRunLeavesTheGeneratorAndTheJudgeAndResumes) {
  const std::string out = test::scratch_dir("eg_recipe");
  const std::string command = "KMIDI_RECIPE_QUICK=1 KMIDI_DATA_ROOT=" + test::shell_quote(KMIDI_SHARED_DATA) +
                              " KMIDI_BIN=" + test::shell_quote(KMIDI_CLI) + " " +
                              test::shell_quote(test::source_path("scripts/train_emotion_generator.sh")) + " " +
                              test::shell_quote(out) + " 2>&1";
  const auto first = test::run_shell(command);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const LoadedGenerator generator = load_generator_checkpoint(out + "/checkpoints/best.ckpt");
  EXPECT_EQ(files::read_all(out + "/checkpoints/tokenizer.json"), files::read_all(out + "/data/emopia/tokenizer.json"));
  EXPECT_EQ(generator.tokenizer->vocab_size(),
            tokenizer::Tokenizer::load(out + "/data/emopia/tokenizer.json").vocab_size());
  const CheckpointFile judge(out + "/judge/best.ckpt");
  EXPECT_EQ(nlohmann::json::parse(judge.bytes(checkpoint_section::kMeta)).at("task"), "emotion");
  const std::string finetune_log = files::read_all(out + "/finetune/train.log");
  EXPECT_NE(finetune_log.find("initialised the weights from " + out + "/pretrain/checkpoints/best.ckpt"),
            std::string::npos)
      << finetune_log;
  // Running it again continues: data reused, every stage resumes at its end.
  const std::string before = files::read_all(out + "/checkpoints/best.ckpt");
  const auto second = test::run_shell(command);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("reusing " + out + "/data/pop909"), std::string::npos) << second.output;
  EXPECT_NE(files::read_all(out + "/pretrain/train.log").find("resumed from"), std::string::npos);
  EXPECT_EQ(files::read_all(out + "/checkpoints/best.ckpt"), before);
  // Bad usage: exit 2, nothing made.
  EXPECT_EQ(test::run_shell(test::shell_quote(test::source_path("scripts/train_emotion_generator.sh")) + " 2>/dev/null")
                .exit_code,
            2);
}

}  // namespace
}  // namespace kmidi::train
