// The MIDI generator through the generic trainer, on the repo's real POP909
// sample: loss against torch's own cross-entropy, the tokenizer as the only
// source of ids, exact resume with per-epoch random crops, generation to MIDI
// that kmidi and mido read back, lengths past the training length, and the
// export graphs against onnxruntime.

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
#include "datasets/midi/MidiReader.h"
#include "onnx/check/Parity.h"
#include "onnx/Metadata.h"
#include "onnx/ModelCheck.h"
#include "models/Sampling.h"
#include "tests/support/TestSupport.h"
#include "tests/train/GraphFile.h"
#include "train/Checkpoint.h"
#include "train/Job.h"
#include "train/tasks/Tasks.h"
#include "train/tasks/MidiGeneratorTask.h"

namespace kmidi::train {
namespace {
namespace fs = std::filesystem;

/// The sample's shards, prepared once per test process.
const std::string& sample_shards() {
  static std::string dir;
  static std::once_flag once;
  std::call_once(once, [] {
    dir = test::scratch_dir("generator_shards", test::ScratchLifetime::kProgram);
    corpus::PrepareConfig c = corpus::load_prepare_config(test::source_path("configs/prepare_pop909_sample.yaml"),
                                                          {"output.dir=" + dir});
    corpus::run_prepare(c);
  });
  return dir;
}

std::unique_ptr<JobConfig> tiny_job(const std::string& out, std::vector<std::string> overrides = {}) {
  overrides.push_back("data.dir=" + sample_shards());
  overrides.push_back("run.output_dir=" + out);
  return load_job_config(test::source_path("configs/midi_generator_tiny.yaml"), overrides, builtin_tasks());
}

std::unique_ptr<MidiGeneratorTask> tiny_task(std::vector<std::string> overrides = {}) {
  auto job = tiny_job(test::scratch_dir("generator_task"), std::move(overrides));
  torch::manual_seed(3);
  TaskContext context;
  return std::make_unique<MidiGeneratorTask>(static_cast<MidiGeneratorJobConfig&>(*job->task_config), context);
}

TEST(MidiGeneratorTask, LossIsTorchCrossEntropyWithLabelSmoothingIgnoringTheTokenizersPad) {
  auto task = tiny_task();
  auto data = task->dataset(Split::kValidation);
  ASSERT_TRUE(data);
  // Two full windows and a piece's short last window (padded).
  int64_t short_item = -1;
  for (size_t i = 0; i < data->size(); ++i) {
    if (data->item_cost(i) < 32) short_item = static_cast<int64_t>(i);
  }
  ASSERT_GE(short_item, 0);
  const data::Batch batch = data->get_batch({0, 1, short_item});
  const at::Tensor labels = batch.targets.at("labels");
  ASSERT_GT((labels == task->tokenizer().pad_id()).sum().item<int64_t>(), 0) << "the batch should contain padding";
  task->model().eval();
  torch::NoGradGuard no_grad;
  const ForwardOutput out = task->forward(batch, false);

  const at::Tensor logits =
      task->generator()->forward(batch.inputs.at("input_ids"), torch::zeros({3, 64}), batch.inputs.at("attention_mask"));
  namespace F = torch::nn::functional;
  const at::Tensor expected = F::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), labels.reshape(-1),
      F::CrossEntropyFuncOptions().ignore_index(task->tokenizer().pad_id()).label_smoothing(0.1).reduction(torch::kSum));
  EXPECT_NEAR(out.loss_sum.item<double>(), expected.item<double>(), 1e-3 * expected.item<double>());
  const at::Tensor nll = F::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), labels.reshape(-1),
      F::CrossEntropyFuncOptions().ignore_index(task->tokenizer().pad_id()).reduction(torch::kSum));
  for (const auto& [name, value] : out.sums) {
    if (name == "nll_sum") EXPECT_NEAR(value.item<double>(), nll.item<double>(), 1e-3 * nll.item<double>());
  }
  // The normaliser is the non-pad target count, as the dataset reports it.
  EXPECT_EQ(batch.units, (labels != task->tokenizer().pad_id()).sum().item<int64_t>());
}

TEST(MidiGeneratorTask, StatedIdsThatDisagreeWithTheTokenizerAreAStartUpError) {
  try {
    tiny_task({"model.pad_id=384"});
    FAIL() << "a pad id that disagrees with tokenizer.json must be refused";
  } catch (const config::ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("model.pad_id"), std::string::npos) << m;
    EXPECT_NE(m.find("384"), std::string::npos) << m;
    EXPECT_NE(m.find("tokenizer.json"), std::string::npos) << m;
  }
  EXPECT_THROW(tiny_task({"model.vocab_size=388"}), config::ConfigError);
  // Stating the tokenizer's own values is fine.
  EXPECT_NO_THROW(tiny_task({"model.pad_id=0", "model.bos_id=1", "model.eos_id=2"}));
}

struct StopAt final : TrainingObserver {
  explicit StopAt(int64_t s) : step(s) {}
  void after_step(Trainer& t, const StepReport& r) override {
    if (r.step == step) t.request_stop("test: stop at step " + std::to_string(step));
  }
  int64_t step;
};

NamedTensorList state_of(torch::nn::Module& m) {
  NamedTensorList out;
  for (const auto& item : m.named_parameters(true)) out.emplace_back(item.key(), item.value().detach().clone());
  return out;
}

bool bit_equal(const NamedTensorList& a, const NamedTensorList& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first || !torch::equal(a[i].second, b[i].second)) return false;
  }
  return true;
}

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

TEST(MidiGeneratorTask, ResumeWithPerEpochRandomCropsIsBitExact) {
  // 14 steps of 8 rows cross the sample's epoch boundary (32 training pieces:
  // 4 steps per epoch), so the resumed run must reproduce later epochs' crops.
  const std::string out = test::scratch_dir("generator_resume");
  const std::vector<std::string> settings = {"train.max_steps=14", "train.checkpoint_every=3",
                                             "train.eval_every=5", "train.grad_accumulation=2"};
  auto job = tiny_job(out, settings);
  auto straight = tiny_task(settings);
  train_task(*straight, *job, out + "/straight");

  auto first = tiny_task(settings);
  const TrainResult part = train_task(*first, *job, out + "/resumed", std::make_shared<StopAt>(7));
  ASSERT_EQ(part.step, 7);
  torch::manual_seed(12345);  // another initialisation: the weights must come from the checkpoint
  TaskContext context;
  auto second = std::make_unique<MidiGeneratorTask>(static_cast<MidiGeneratorJobConfig&>(*job->task_config), context);
  const TrainResult rest = train_task(*second, *job, out + "/resumed");
  EXPECT_EQ(rest.step, 14);
  EXPECT_TRUE(bit_equal(state_of(straight->model()), state_of(second->model())));
  // And the crops really change per epoch: without set_epoch, epoch 1 would repeat epoch 0.
  auto data = straight->dataset(Split::kTrain);
  const at::Tensor epoch0 = (data->set_epoch(0), data->get_batch({0}).inputs.at("input_ids"));
  const at::Tensor epoch1 = (data->set_epoch(1), data->get_batch({0}).inputs.at("input_ids"));
  EXPECT_FALSE(torch::equal(epoch0, epoch1));
}

TEST(MidiGeneratorTask, TrainCommandPathLowersValidationPerplexityBelowItsStart) {
  const std::string out = test::scratch_dir("generator_train");
  auto job = tiny_job(out, {"train.max_steps=30", "train.eval_every=0", "train.eval_max_batches=0"});
  auto untrained = tiny_task();
  const TrainResult r = run_training(*job, builtin_tasks());
  ASSERT_TRUE(r.last_validation && r.last_validation->labelled);
  const auto& m = r.last_validation->metrics;
  EXPECT_LT(m.at("perplexity"), static_cast<double>(untrained->tokenizer().vocab_size()) / 2)
      << "30 steps must beat a uniform guess by far";
  EXPECT_NEAR(m.at("perplexity"), std::exp(m.at("nll")), 1e-9);
  EXPECT_GT(m.at("accuracy"), 0.0);
  EXPECT_GT(m.at("unigram_perplexity"), 1.0);
  EXPECT_TRUE(fs::exists(r.last_checkpoint));
  // tokenizer.json travels with the checkpoints.
  EXPECT_EQ(files::read_all(fs::path(r.last_checkpoint).parent_path().string() + "/tokenizer.json"),
            files::read_all(sample_shards() + "/tokenizer.json"));
}

/// A trained tiny checkpoint shared by the generation and export tests.
const std::string& tiny_checkpoint() {
  static std::string path;
  static std::once_flag once;
  std::call_once(once, [] {
    auto job = tiny_job(test::scratch_dir("generator_ckpt", test::ScratchLifetime::kProgram), {"train.max_steps=8", "train.eval_every=0"});
    path = run_training(*job, builtin_tasks()).last_checkpoint;
  });
  return path;
}

TEST(MidiGeneratorTask, GeneratedPiecesAreValidMidiThatMidoReadsBack) {
  const std::string dir = test::scratch_dir("generator_generate");
  const std::string kmidi = KMIDI_CLI;
  const std::string song = dir + "/song.mid";
  const auto r = test::run({kmidi, "generate", "--checkpoint", tiny_checkpoint(), "--emotion", "0.5,-0.25,1",
                            "--max-tokens", "300", "--seed", "4", "--out", song});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto summary = nlohmann::json::parse(r.output);
  EXPECT_LE(summary.at("tokens").get<int64_t>(), 301);
  // kmidi's strict reader and mido agree on the notes.
  const midi::Score score = midi::read_midi_file(song);
  EXPECT_EQ(static_cast<int64_t>(score.notes.size()), summary.at("notes").get<int64_t>());
  const auto mido = test::run({test::python(), "-c",
                               "import mido,sys; m=mido.MidiFile(sys.argv[1]); "
                               "print(sum(1 for t in m.tracks for e in t if e.type=='note_on' and e.velocity>0))",
                               song});
  ASSERT_EQ(mido.exit_code, 0);
  EXPECT_EQ(std::stoll(mido.output), static_cast<int64_t>(score.notes.size()));
  // The same seed gives the same file; another seed another piece.
  const std::string again = dir + "/again.mid";
  ASSERT_EQ(test::run({kmidi, "generate", "--checkpoint", tiny_checkpoint(), "--emotion", "0.5,-0.25,1",
                       "--max-tokens", "300", "--seed", "4", "--out", again})
                .exit_code,
            0);
  EXPECT_EQ(files::read_all(song), files::read_all(again));
  // Bad emotion values are usage errors (exit 2) that write nothing.
  const auto bad = test::run({kmidi, "generate", "--checkpoint", tiny_checkpoint(), "--emotion", "2,0",
                              "--out", dir + "/bad.mid"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_FALSE(fs::exists(dir + "/bad.mid"));
}

TEST(MidiGeneratorTask, SequencesFarLongerThanTheTrainingLengthWork) {
  LoadedGenerator g = load_generator_checkpoint(tiny_checkpoint());
  torch::NoGradGuard no_grad;
  // Trained on 32-token rows; 700 tokens have no table to overflow.
  const at::Tensor ids = torch::randint(4, g.tokenizer->vocab_size(), {1, 700}, torch::kLong);
  const at::Tensor logits = g.model->forward(ids, torch::zeros({1, 64}));
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{1, 700, g.tokenizer->vocab_size()}));
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  // Cached generation agrees with the full pass at the far end.
  models::KVCache cache;
  g.model->forward_cached(ids.slice(1, 0, 699), torch::zeros({1, 64}), cache);
  const at::Tensor last = g.model->forward_cached(ids.slice(1, 699, 700), torch::zeros({1, 64}), cache);
  EXPECT_LT((last[0][0] - logits[0][699]).abs().max().item<double>(), 1e-4);
}

TEST(MidiGeneratorTask, GraphsMatchLibTorchInOnnxruntimeAndCarryTheTokenizer) {
  auto job = tiny_job(test::scratch_dir("generator_graphs_job"));
  torch::manual_seed(9);
  MidiGeneratorTask task(static_cast<MidiGeneratorJobConfig&>(*job->task_config), TaskContext{});
  const std::string dir = test::scratch_dir("generator_graphs");
  const std::vector<GraphExport> graphs = task.graphs();
  ASSERT_EQ(graphs.size(), 2u);
  for (const GraphExport& g : graphs) {
    const std::string path = dir + "/generator" + (g.suffix.empty() ? "" : "." + g.suffix) + ".onnx";
    test::write_checked_graph(g, path);
    uint64_t seed = 1;
    for (const auto& [batch, length] : g.parity_shapes) {
      const data::NamedTensors in = g.sample_inputs(batch, length, seed++);
      onnx::onnxruntime_parity(path, in, g.reference(in))
          .require_passed(path + " batch " + std::to_string(batch) + " length " + std::to_string(length));
    }
    // A consumer rebuilds the tokenizer from the file alone.
    const onnx::OnnxModelInfo info = onnx::read_model_info(path);
    const auto json = info.metadata_value(onnx::meta::kTokenizer);
    ASSERT_TRUE(json);
    const tokenizer::Tokenizer from_file = tokenizer::Tokenizer::from_json(*json, path);
    EXPECT_EQ(from_file.sha256(), task.tokenizer().sha256());
    EXPECT_EQ(info.metadata_value("kmidi.special_token.pad").value_or(""), std::to_string(task.tokenizer().pad_id()));
    EXPECT_EQ(info.metadata_value("kmidi.special_token.eos").value_or(""), std::to_string(task.tokenizer().eos_id()));
  }
  // The registry's output_size is what an engine sizes its logits buffer
  // from: the last dimension of `logits`, the vocabulary.
  EXPECT_EQ(graphs[0].registry_task, "melody_generation");
  EXPECT_EQ(graphs[0].registry_output_size, task.tokenizer().vocab_size());
  const onnx::OnnxModelInfo full = onnx::read_model_info(dir + "/generator.onnx");
  ASSERT_EQ(full.outputs.at(0).name, "logits");
  EXPECT_EQ(full.outputs.at(0).shape.back().size(), graphs[0].registry_output_size);
}

}  // namespace
}  // namespace kmidi::train
