#pragma once
// The emotion family as a trainer task (`task: emotion`): MIDI clips (tokens
// and/or the 128 emotion features, by data.inputs) to valence_arousal [B, 2]
// (regression in [-1, 1]) and quadrant [B, 4] (classification), with
// task-aware losses per head (losses/TaskLoss.h) from the `loss` section.
//
// At start-up the task
//   - standardises features with the mean and std of the TRAIN split only,
//     stored in the model's buffers feature_mean / feature_std (they travel
//     with checkpoints and exports);
//   - runs the model on the first items of every labelled split and checks
//     each loss head against the model's outputs and the data's targets
//     (losses::validate_targets): float targets into cross-entropy, class
//     ids out of range or shapes that do not fit are a UsageError naming the
//     head before any training step.
//
// Metrics (finalize): loss, loss_<head> (per head, per sample),
// quadrant_accuracy, quadrant_macro_f1, valence_accuracy and
// arousal_accuracy (sign agreement of the predicted valence_arousal with the
// quadrant's), valence_positive_share and quadrant_valence_positive_share
// (share of clips predicted valence-positive by the valence_arousal head and
// by the quadrant, Q1 or Q4), va_mse (mean squared error over both values), and the
// confusion matrix as counts confusion_Q<true>_Q<predicted>.
// With feature inputs, also the feature baseline's baseline_quadrant_accuracy,
// baseline_arousal_accuracy and baseline_valence_accuracy on the same split
// (train/tasks/EmotionBaseline.h: logistic regression fitted at start-up on
// the train split), so that kmidi evaluate reports both side by side.
//
// predict(): valence_arousal [B, 2], quadrant [B] (predicted quadrant 1..4)
// and quadrant_probabilities [B, 4]; works on batches without targets.

#include <memory>
#include <string>

#include "core/Config.h"
#include "datasets/EmotionDataset.h"
#include "losses/TaskLoss.h"
#include "models/EmotionModel.h"
#include "train/Task.h"
#include "train/tasks/EmotionBaseline.h"

namespace kmidi::train {

struct EmotionModelConfig : config::Section {
  int64_t hidden = 128;   ///< feature branch and fusion width
  double dropout = 0.1;
  int64_t d_model = 128;  ///< token branch (inputs tokens or both)
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t d_ff = 256;
  void visit(config::Visitor& v) override;
};

struct EmotionExportConfig : config::Section {
  /// Also export the engines' legacy `emotionrecognizer` slot (static
  /// [1, 128] -> [1, 64], models/EmotionModel.h); needs data.inputs: features.
  bool legacy_slot = false;
  void visit(config::Visitor& v) override;
};

/// The task's own top-level sections: data, model, loss and export.
struct EmotionTaskConfig : config::Section {
  data::EmotionDataConfig data;
  EmotionModelConfig model;
  losses::TaskLossConfig loss;
  EmotionExportConfig export_;
  void visit(config::Visitor& v) override;
};

/// The model options `config` describes (vocab_size: the tokenizer's, with
/// token inputs). kmidi predict builds the model from a checkpoint with it.
models::EmotionModelOptions emotion_model_options(const EmotionTaskConfig& config, int32_t vocab_size);

/// The trained module: the emotion model under "model", plus the loss's
/// learned weights under "loss" with weighting: uncertainty.
class EmotionTask final : public Task {
 public:
  /// Loads every split, sets the feature statistics and checks the loss
  /// heads (see above). Throws UsageError / DataError.
  EmotionTask(const EmotionTaskConfig& config, const TaskContext& context);
  ~EmotionTask() override;

  torch::nn::Module& model() override { return *root_; }
  std::shared_ptr<const data::Dataset> dataset(Split split) override;
  ForwardOutput forward(const data::Batch& batch, bool training) override;
  MetricValues finalize(const MetricValues& sums, Split split) const override;
  data::NamedTensors predict(const data::Batch& batch) override;
  std::map<std::string, std::string> artifacts() const override;
  std::string throughput_unit() const override { return "samples"; }
  std::vector<GraphExport> graphs() override;

  models::EmotionModel emotion_model() const { return model_; }
  const data::EmotionDataset* emotion_dataset(Split split) const;

 private:
  /// Model outputs by name: valence_arousal [B, 2], quadrant logits [B, 4].
  data::NamedTensors outputs(const data::Batch& batch);
  void check_heads();
  /// Fits the feature baseline and records its metrics per labelled split.
  void fit_baseline();
  /// The legacy emotionrecognizer graph (export.legacy_slot).
  GraphExport legacy_graph();

  EmotionTaskConfig config_;
  TaskContext context_;
  std::shared_ptr<torch::nn::Module> root_;
  models::EmotionModel model_{nullptr};
  losses::TaskLoss loss_{nullptr};
  std::shared_ptr<data::EmotionDataset> train_, validation_, test_;
  std::string tokenizer_json_;
  /// The feature baseline's metrics per labelled split (with feature inputs).
  std::map<Split, MetricValues> baseline_metrics_;
};

}  // namespace kmidi::train
