#include "models/GrooveModel.h"

#include <torch/torch.h>

#include <stdexcept>

#include "models/OnnxLayers.h"
#include "onnx/Metadata.h"
#include "onnx/torch/TorchTensors.h"

namespace kmidi::models {

void GrooveModelOptions::validate() const {
  if (drum_classes <= 0) throw std::invalid_argument("groove model: drum_classes must be positive");
  if (num_styles < 0) throw std::invalid_argument("groove model: num_styles must be >= 0");
  if (bar_steps < 0) throw std::invalid_argument("groove model: bar_steps must be >= 0");
  if (num_players < 0) throw std::invalid_argument("groove model: num_players must be >= 0");
  encoder.validate("groove model encoder");
}

GrooveModelImpl::GrooveModelImpl(GrooveModelOptions options) : options_(std::move(options)) {
  options_.validate();
  const auto& o = options_;
  hit_embedding = register_module("hit_embedding", torch::nn::Linear(o.drum_classes, o.encoder.d_model));
  tempo_embedding = register_module("tempo_embedding", torch::nn::Linear(1, o.encoder.d_model));
  if (o.bar_steps > 0) {
    bar_position = register_module("bar_position", torch::nn::Embedding(o.bar_steps, o.encoder.d_model));
  }
  if (o.num_players > 0) {
    player_embedding =
        register_module("player_embedding", torch::nn::Embedding(o.num_players + 1, o.encoder.d_model));
  }
  encoder = register_module("encoder", TransformerEncoder(o.encoder));
  offset_head = register_module("offset_head", torch::nn::Linear(o.encoder.d_model, o.drum_classes));
  velocity_head = register_module("velocity_head", torch::nn::Linear(o.encoder.d_model, o.drum_classes));
  if (o.num_styles > 0) style_head = register_module("style_head", torch::nn::Linear(o.encoder.d_model, o.num_styles));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> GrooveModelImpl::forward(const at::Tensor& hits, const at::Tensor& tempo,
                                                                        const at::Tensor& player) {
  const auto& o = options_;
  TORCH_CHECK(hits.dim() == 3 && hits.size(2) == o.drum_classes, "groove model: hits must be [batch, steps, ",
              o.drum_classes, "], got ", hits.sizes());
  TORCH_CHECK(tempo.dim() == 2 && tempo.size(0) == hits.size(0) && tempo.size(1) == 1,
              "groove model: tempo must be [batch, 1], got ", tempo.sizes());
  // The residual stream stays in the weights' dtype (fp32) under bf16
  // autocast, which casts linear outputs to bf16: LibTorch 1.13's CPU
  // layer_norm refuses a bf16 input with fp32 weights, and fp32 keeps small updates.
  const auto weight_type = hit_embedding->weight.scalar_type();
  at::Tensor x = (hit_embedding->forward(hits.to(weight_type)) +
                  tempo_embedding->forward(tempo.to(weight_type)).unsqueeze(1)).to(weight_type);
  if (bar_position) {
    const at::Tensor steps = torch::arange(hits.size(1), torch::dtype(torch::kLong).device(hits.device()));
    x = x + bar_position->forward(torch::remainder(steps, o.bar_steps)).unsqueeze(0);
  }
  if (player.defined()) {
    TORCH_CHECK(player_embedding, "groove model: a player id was given, but the model has no players (num_players 0)");
    TORCH_CHECK(player.dim() == 1 && player.size(0) == hits.size(0), "groove model: player must be [batch], got ",
                player.sizes());
    // Range-checked on the CPU only: on a GPU the check would synchronise every step.
    const bool checkable = player.device().is_cpu() && player.numel() > 0;
    TORCH_CHECK(!checkable || (player.min().item<int64_t>() >= 0 && player.max().item<int64_t>() <= o.num_players),
                "groove model: player ids must lie in [0, ", o.num_players, "] (0: any player)");
  }
  if (player_embedding) {
    const at::Tensor ids = player.defined()
                               ? player.to(torch::kLong)
                               : torch::zeros({hits.size(0)}, torch::dtype(torch::kLong).device(hits.device()));
    x = x + player_embedding->forward(ids).unsqueeze(1);
  }
  const at::Tensor h = encoder->forward(x);
  at::Tensor style;
  if (style_head) style = style_head->forward(h.mean(1));
  return {0.5 * torch::tanh(offset_head->forward(h)), torch::sigmoid(velocity_head->forward(h)), style};
}

// ONNX emission: mirrors the forward above (see the tests in tests/models).

using onnx::DType;
using onnx::Value;
using namespace onnx_emit;

void emit_groove_model(onnx::ModelBuilder& b, GrooveModelImpl& m) {
  torch::NoGradGuard no_grad;
  const GrooveModelOptions& o = m.options();
  b.set_metadata(onnx::meta::kModelFamily, "groove");
  b.set_metadata(onnx::meta::kProfile, "full");
  const Value hits = b.input("hits", DType::kFloat32, {"batch", "sequence", o.drum_classes},
                             "1 where a drum class is struck on a 16th-note step");
  const Value tempo = b.input("tempo", DType::kFloat32, {"batch", 1}, "bpm / 200");
  Value x = b.add(linear(b, hits, m.hit_embedding, "hit_embedding"),
                  b.unsqueeze(linear(b, tempo, m.tempo_embedding, "tempo_embedding"), {1}));
  if (m.bar_position) {
    // Position in the bar of each step: Range(0, T) mod bar_steps, embedded, broadcast over the batch.
    b.set_metadata("kmidi.groove.bar_steps", std::to_string(o.bar_steps));
    const Value steps = b.node("Range", {b.scalar_int64(0), dim_scalar(b, hits, 1), b.scalar_int64(1)}, {}, "steps");
    const Value in_bar = b.node("Mod", {steps, b.scalar_int64(o.bar_steps)}, {}, "bar_position_ids");
    x = b.add(x, b.embedding(in_bar, onnx::to_tensor_data(m.bar_position->weight), "bar_position"));
  }
  if (m.player_embedding) {
    const Value player = b.input("player", DType::kInt64, {"batch"}, "0: any player; 1..P: kmidi.groove.players");
    x = b.add(x, b.unsqueeze(b.embedding(player, onnx::to_tensor_data(m.player_embedding->weight), "player_embedding"),
                             {1}));
  }
  const int64_t hd = o.encoder.d_model / o.encoder.n_heads;
  const RotaryTables rotary =
      rotary_tables(b, position_range(b, b.scalar_int64(0), dim_scalar(b, hits, 1)), false, hd, o.encoder.rope_base);
  const Value h = encoder(b, x, *m.encoder, Value(), rotary, "encoder");
  b.output(b.mul(b.scalar_float32(0.5f), b.tanh(linear(b, h, m.offset_head, "offset_head"))), "offsets",
           DType::kFloat32, {"batch", "sequence", o.drum_classes}, "timing offset in steps, [-0.5, 0.5]");
  b.output(b.sigmoid(linear(b, h, m.velocity_head, "velocity_head")), "velocities", DType::kFloat32,
           {"batch", "sequence", o.drum_classes}, "velocity / 127");
  if (m.style_head) {
    b.output(b.softmax(linear(b, b.reduce_mean(h, {1}, false), m.style_head, "style_head"), -1), "style",
             DType::kFloat32, {"batch", o.num_styles}, "style probabilities");
  }
}

}  // namespace kmidi::models
