#pragma once
// Groove humanizer: a quantized drum pattern on a 16th-note grid in, per-hit
// timing offsets and velocities out (the Groove MIDI Dataset's humanize task).
//
// Input hits [B, T, C]: 1 where drum class c is struck at grid step t; tempo
// [B, 1] in bpm/200. With bar_steps > 0, step t is at position t mod
// bar_steps of its bar (sequences start on a bar line), and a learned
// embedding of that position joins the input: rotary attention alone sees
// only relative distances, while timing and accents depend on the beat.
// With num_players > 0, player [B] (int64: 0 for "any player", 1..P for the
// players the model was trained on) picks a learned embedding that joins
// every step: drummers differ in how they push or lay back and accent, and
// the pattern alone cannot tell. Outputs, in order: offsets [B, T, C] in
// fractions of a step within [-0.5, 0.5], velocities [B, T, C] in [0, 1]
// (× 127 for MIDI), and, when styles are configured, style [B, S] logits. Values at steps
// without a hit carry no meaning (the loss masks them).

#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <array>
#include <tuple>

#include "models/Layers.h"

namespace kmidi::onnx {
class ModelBuilder;
}

namespace kmidi::models {

struct GrooveModelOptions {
  int64_t drum_classes = 9;
  int64_t num_styles = 0;  ///< 0: no style head
  int64_t bar_steps = 0;   ///< > 0: embed each step's position in the bar (16 for 4/4 in 16ths)
  int64_t num_players = 0; ///< > 0: condition on a player id (0 = any player, 1..num_players)
  EncoderOptions encoder;
  void validate() const;
};

class GrooveModelImpl : public torch::nn::Module {
 public:
  static constexpr std::array<const char*, 3> kOutputNames{"offsets", "velocities", "style"};

  explicit GrooveModelImpl(GrooveModelOptions options);
  /// hits [B, T, C], tempo [B, 1], player [B] int64 (undefined: 0, any
  /// player) → (offsets, velocities, style or undefined).
  std::tuple<at::Tensor, at::Tensor, at::Tensor> forward(const at::Tensor& hits, const at::Tensor& tempo,
                                                         const at::Tensor& player = {});
  const GrooveModelOptions& options() const { return options_; }

  torch::nn::Linear hit_embedding{nullptr}, tempo_embedding{nullptr};
  torch::nn::Embedding bar_position{nullptr};  ///< [bar_steps, d_model]; only with bar_steps > 0
  torch::nn::Embedding player_embedding{nullptr};  ///< [1 + num_players, d_model]; only with num_players > 0
  TransformerEncoder encoder{nullptr};
  torch::nn::Linear offset_head{nullptr}, velocity_head{nullptr}, style_head{nullptr};

 private:
  GrooveModelOptions options_;
};
TORCH_MODULE(GrooveModel);

/// Emits the groove graph (eval mode): inputs hits [batch, sequence, C],
/// tempo [batch, 1] and, with players, player [batch] int64; outputs offsets,
/// velocities and, with styles, style as PROBABILITIES [batch, S].
void emit_groove_model(onnx::ModelBuilder& b, GrooveModelImpl& model);

}  // namespace kmidi::models
