#pragma once
// Emotion recognition from MIDI: valence and arousal (regression in [-1, 1])
// and the Russell quadrant (4 classes), from a token sequence, a feature
// vector, or both (by config).
//
// Outputs, in order: valence_arousal [B, 2] (tanh), quadrant [B, 4] (logits;
// the ONNX export emits probabilities). Feature standardisation statistics are
// buffers (feature_mean, feature_std) so that they travel with checkpoints and
// exports instead of living in a training script.

#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <array>
#include <tuple>

#include "models/Layers.h"

namespace kmidi::onnx {
class ModelBuilder;
}

namespace kmidi::models {

struct EmotionModelOptions {
  bool use_tokens = true;
  bool use_features = true;
  int64_t vocab_size = 0;     ///< REQUIRED with tokens; from tokenizer.json
  int64_t feature_dim = 0;    ///< REQUIRED with features; from the feature extractor
  EncoderOptions encoder;     ///< token branch
  int64_t hidden = 128;       ///< width of the feature branch and the fusion layer
  double dropout = 0.1;
  int64_t num_quadrants = 4;
  void validate() const;
};

class EmotionModelImpl : public torch::nn::Module {
 public:
  static constexpr std::array<const char*, 2> kOutputNames{"valence_arousal", "quadrant"};

  explicit EmotionModelImpl(EmotionModelOptions options);
  /// input_ids [B, T] int64 and attention_mask [B, T] (token branch), features
  /// [B, F] (feature branch); unused inputs may be undefined.
  std::tuple<at::Tensor, at::Tensor> forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                             const at::Tensor& features);
  /// Sets the feature standardisation from training-set statistics [F].
  void set_feature_statistics(const at::Tensor& mean, const at::Tensor& std);
  const EmotionModelOptions& options() const { return options_; }

  torch::nn::Embedding token_embedding{nullptr};
  TransformerEncoder encoder{nullptr};
  at::Tensor feature_mean, feature_std;
  torch::nn::Linear feature_in{nullptr}, feature_hidden{nullptr};
  torch::nn::Linear fusion{nullptr};
  torch::nn::Linear valence_arousal_head{nullptr}, quadrant_head{nullptr};

 private:
  EmotionModelOptions options_;
};
TORCH_MODULE(EmotionModel);

/// Emits the emotion graph (eval mode). Inputs, as configured: input_ids and
/// attention_mask int64 [batch, sequence], features float32 [batch, F].
/// Outputs: valence_arousal [batch, 2], quadrant [batch, 4] as PROBABILITIES.
void emit_emotion_model(onnx::ModelBuilder& b, EmotionModelImpl& model);

/// The engines' legacy `emotionrecognizer` slot (../shared/CONTRACTS.md): the
/// legacy loader reads one static float input [1, 128] and one output
/// [1, 64] made of four blocks of 16 values: valence, arousal, dominance,
/// complexity. A features-only model fits it: its input is the 128-value
/// emotion feature vector, and each block repeats one value, so a loader
/// that reads any element of a block, or its mean, gets the prediction.
/// Dominance and complexity are not predicted and stay 0 (neutral).
constexpr int64_t kLegacyEmotionInput = 128;
constexpr int64_t kLegacyEmotionOutput = 64;
constexpr int64_t kLegacyEmotionBlock = 16;
/// The [2, 64] matrix that places (valence, arousal) into the slot's output.
at::Tensor legacy_emotion_layout();
/// valence_arousal [B, 2] → the slot's output [B, 64].
at::Tensor legacy_emotion_output(const at::Tensor& valence_arousal);
/// Whether `model` fits the slot (features only, 128 of them).
bool fits_legacy_emotion_slot(const EmotionModelImpl& model);
/// Emits the slot's graph (eval mode): input "input" float32 [1, 128] →
/// output "output" float32 [1, 64]. Throws UsageError when the model does not fit.
void emit_emotion_legacy(onnx::ModelBuilder& b, EmotionModelImpl& model);

}  // namespace kmidi::models
