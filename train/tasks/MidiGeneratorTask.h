#pragma once
// The MIDI generator as a trainer task (`task: midi_generator`): next-token
// prediction over prepared token shards, conditioned on the emotion vector
// when the shards carry valence/arousal labels (zeros otherwise).
//
// The tokenizer.json beside the shards is the only source of ids: the model's
// vocabulary, the loss's ignore_index (PAD) and the ids generation stops on
// come from it; a model config that states a different id fails at start-up.

#include <torch/nn/module.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/Config.h"
#include "datasets/BatchingConfig.h"
#include "datasets/MixtureDataset.h"
#include "datasets/TokenDataset.h"
#include "datasets/tokenizer/TokenIds.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "models/MidiGenerator.h"
#include "train/Task.h"

namespace kmidi::train {

struct GeneratorDataConfig : config::Section {
  /// kmidi prepare config; its output.dir is the data, prepared on first use
  /// when missing (single-process jobs only).
  config::Path prepare;
  /// Prepared shards (<split>.h5 + tokenizer.json); default: prepare's output.dir.
  config::Path dir;
  /// Several prepared corpora with weights, instead of dir/prepare
  /// (datasets/MixtureDataset.h): training draws by weight, evaluation
  /// reports each corpus's own split.
  std::vector<data::MixtureCorpusConfig> mixture;
  /// mixture: training draws per epoch; 0: the corpora's training items together.
  int64_t mixture_draws_per_epoch = 0;
  int64_t max_length = 256;              ///< tokens per training row (any length works at inference)
  std::string windowing = "random_crop"; ///< training windows: random_crop | windows
  /// Read every token into memory at start-up. Off (default): tokens are
  /// read by chunk, so memory does not grow with the corpus.
  bool preload = false;
  /// A labelled item's valence and arousal are the shard's (EMOPIA: the
  /// quadrant's signs, +-1) times this, so that `--emotion 0.8,0.8` asks for
  /// what a Q1 clip was shown; unlabelled items are neutral (0).
  double emotion_scale = 0.8;
  data::BatchingConfig batching;         ///< training micro-batches by token budget (train/Sampler.h)
  /// Training transposition [lowest, highest] semitones (datasets/TokenAugment.h); [] off.
  std::vector<int64_t> transpose;
  void visit(config::Visitor& v) override;
};

struct GeneratorModelConfig : config::Section {
  int64_t d_model = 256;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t d_ff = 1024;
  double dropout = 0.1;
  std::string conditioning = "prefix";  ///< prefix | cross_attention
  int64_t condition_tokens = 4;
  double rope_base = 10000.0;
  bool tie_embeddings = true;
  /// Share of labelled training items shown with the neutral (zero) emotion
  /// vector, so that zero means "any emotion" (chosen per seed, epoch and
  /// item: resume-exact and independent of the number of ranks).
  double condition_dropout = 0.0;
  /// Optional statements of the tokenizer's ids (vocab_size, pad_id, ...),
  /// checked against tokenizer.json; -1 takes the tokenizer's.
  tokenizer::StatedTokenIds stated;
  void visit(config::Visitor& v) override;
  /// The model's options for `vocab_size` tokens.
  models::MidiGeneratorOptions options(int64_t vocab_size) const;
};

struct GeneratorLossConfig : config::Section {
  double label_smoothing = 0.1;
  void visit(config::Visitor& v) override;
};

/// The task's own top-level sections.
struct MidiGeneratorJobConfig : config::Section {
  GeneratorDataConfig data;
  GeneratorModelConfig model;
  GeneratorLossConfig loss;
  void visit(config::Visitor& v) override;
};

/// Where the shards are: data.dir, else the prepare config's output.dir
/// (running kmidi prepare first when they are missing and `may_prepare`).
std::string resolve_generator_data(const GeneratorDataConfig& data, bool may_prepare);

class MidiGeneratorTask : public Task {
 public:
  MidiGeneratorTask(const MidiGeneratorJobConfig& config, const TaskContext& context);

  torch::nn::Module& model() override;
  std::shared_ptr<const data::Dataset> dataset(Split split) override;
  ForwardOutput forward(const data::Batch& batch, bool training) override;
  /// loss (label-smoothed), nll, perplexity = exp(nll), accuracy (non-pad
  /// targets), and the train split's unigram perplexity on the same tokens
  /// as the baseline to beat. With data.mixture, per corpus <name>: nll.<name>,
  /// perplexity.<name>, accuracy.<name>, and draws.<name> (training: rows
  /// drawn since the last log line) or rows.<name> (evaluation).
  MetricValues finalize(const MetricValues& sums, Split split) const override;
  /// Per row: the model's log-likelihood of the row's own tokens after the
  /// first, and how many tokens that sums over (works without targets).
  data::NamedTensors predict(const data::Batch& batch) override;
  std::map<std::string, std::string> artifacts() const override;
  std::string throughput_unit() const override { return "tokens"; }
  /// The full graph and the incremental (KV cache) graph, each with the
  /// tokenizer and every special id in the metadata.
  std::vector<GraphExport> graphs() override;

  models::MidiGenerator& generator() { return model_; }
  /// The emotion vector [B, 64] the model is conditioned on for `batch`: the
  /// batch's "emotion" (labelled shards), else the neutral zero vector.
  at::Tensor emotion_input(const data::Batch& batch) const;
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  /// data.mixture: per-corpus "nll_sum.<name>", "units.<name>", "correct.<name>", "rows.<name>".
  void add_corpus_sums(const data::Batch& batch, const at::Tensor& nll, const at::Tensor& valid,
                       const at::Tensor& correct, MetricSums& sums) const;

  MidiGeneratorJobConfig config_;
  std::string data_dir_;
  std::shared_ptr<tokenizer::Tokenizer> tokenizer_;
  std::string tokenizer_json_;
  std::map<Split, std::shared_ptr<const data::Dataset>> datasets_;
  std::vector<std::string> corpus_names_;  ///< data.mixture's, in order; empty without a mixture
  models::MidiGenerator model_{nullptr};
  at::Tensor unigram_log_probs_;  ///< [V] log p(token) on the train split (add-one smoothed)
};

/// The generator and tokenizer stored in a checkpoint (its config and
/// tokenizer.json travel inside it), for generation without the data.
struct LoadedGenerator {
  models::MidiGenerator model{nullptr};
  std::shared_ptr<tokenizer::Tokenizer> tokenizer;
  int64_t step = 0;
};
LoadedGenerator load_generator_checkpoint(const std::string& checkpoint_path, bool use_ema = true);

}  // namespace kmidi::train
