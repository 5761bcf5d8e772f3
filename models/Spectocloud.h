#pragma once
// Spectocloud: a mel spectrogram excerpt (with its emotion vector and MIDI
// features) to the 1200-point cloud the visualiser draws.
//
// A 1-D convolutional encoder runs over time (mel bands as channels); learned
// point queries, offset by a global context vector (pooled audio, emotion,
// MIDI features), cross-attend to the encoded frames and a per-point MLP emits
// position, colour and properties. Attention over frames accepts any number of
// frames. Outputs, in order (the export contract, see CONTRACTS.md):
//   positions [B, P, 3] in [-1, 1], colors [B, P, 4] RGBA in [0, 1],
//   properties [B, P, 3] (size, glow, depth) in [0, 1].

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <array>
#include <string>
#include <tuple>

#include "models/Layers.h"

namespace kmidi::onnx {
class ModelBuilder;
}

namespace kmidi::models {

struct SpectocloudOptions {
  int64_t n_mels = 128;
  int64_t emotion_dim = 64;
  int64_t midi_features = 32;
  int64_t num_points = 1200;
  int64_t conv_channels = 192;  ///< width of the first two convolutions
  int64_t d_model = 64;         ///< width of frames, queries and the decoder
  int64_t n_heads = 4;
  int64_t decoder_layers = 1;
  int64_t d_ff = 128;
  double dropout = 0.0;
  void validate() const;
};

class PointDecoderBlockImpl : public torch::nn::Module {
 public:
  PointDecoderBlockImpl(int64_t d_model, int64_t n_heads, int64_t d_ff, double dropout);
  torch::nn::LayerNorm query_norm{nullptr}, memory_norm{nullptr}, mlp_norm{nullptr};
  CrossAttention cross{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(PointDecoderBlock);

class SpectocloudImpl : public torch::nn::Module {
 public:
  static constexpr std::array<const char*, 3> kOutputNames{"positions", "colors", "properties"};
  /// The three convolutions: kernel 3, padding 1, strides 1, 2, 2 (frames / 4).
  static constexpr int64_t kKernel = 3, kPadding = 1;
  static constexpr std::array<int64_t, 3> kStrides{1, 2, 2};

  explicit SpectocloudImpl(SpectocloudOptions options);
  /// spectrogram [B, n_mels, F], emotion [B, E], midi_features [B, M] →
  /// (positions [B, P, 3], colors [B, P, 4], properties [B, P, 3]).
  std::tuple<at::Tensor, at::Tensor, at::Tensor> forward(const at::Tensor& spectrogram, const at::Tensor& emotion,
                                                         const at::Tensor& midi_features);
  const SpectocloudOptions& options() const { return options_; }

  torch::nn::Conv1d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::Linear time_embedding{nullptr};  ///< frame time in [-1, 1] → d_model
  torch::nn::Linear context1{nullptr}, context2{nullptr};
  at::Tensor point_queries;  ///< [P, d_model]
  torch::nn::ModuleList decoder{nullptr};
  torch::nn::LayerNorm out_norm{nullptr};
  torch::nn::Linear head{nullptr};  ///< d_model → 3 + 4 + 3

 private:
  SpectocloudOptions options_;
};
TORCH_MODULE(Spectocloud);

/// Emits the spectocloud graph (eval mode): inputs spectrogram, emotion,
/// midi_features; outputs positions, colors, properties (kOutputNames order).
void emit_spectocloud(onnx::ModelBuilder& b, SpectocloudImpl& model);

}  // namespace kmidi::models
