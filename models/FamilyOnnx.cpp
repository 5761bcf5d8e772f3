// ONNX emission of the spectocloud, emotion and groove models; each function
// mirrors its family's LibTorch forward (see the tests in tests/models).

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "core/Errors.h"
#include "onnx/torch/TorchTensors.h"
#include "onnx/Metadata.h"
#include "models/EmotionModel.h"
#include "models/GrooveModel.h"
#include "models/OnnxLayers.h"
#include "models/Spectocloud.h"

namespace kmidi::models {

using onnx::DType;
using onnx::Value;
using namespace onnx_emit;

namespace {

onnx::AttentionOptions scaled(int64_t head_dim) {
  onnx::AttentionOptions o;
  o.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  return o;
}

Value conv1d(onnx::ModelBuilder& b, const Value& x, const torch::nn::Conv1d& conv, int64_t stride,
             const std::string& name) {
  onnx::ConvOptions options;
  options.stride = {stride};
  options.padding = {SpectocloudImpl::kPadding};
  return b.conv(x, onnx::to_tensor_data(conv->weight), onnx::to_tensor_data(conv->bias), options, name);
}

// Standardisation and the two feature layers: [B, F] → [B, hidden].
Value emotion_feature_branch(onnx::ModelBuilder& b, EmotionModelImpl& m, const Value& features) {
  const Value z = b.div(b.sub(features, b.initializer("feature_mean", onnx::to_tensor_data(m.feature_mean))),
                        b.initializer("feature_std", onnx::to_tensor_data(m.feature_std)));
  const Value h = b.gelu(linear(b, z, m.feature_in, "feature_in"));
  return b.gelu(linear(b, h, m.feature_hidden, "feature_hidden"));
}

}  // namespace

void emit_spectocloud(onnx::ModelBuilder& b, SpectocloudImpl& m) {
  torch::NoGradGuard no_grad;
  const SpectocloudOptions& o = m.options();
  const int64_t heads = o.n_heads, hd = o.d_model / heads;
  b.set_metadata(onnx::meta::kModelFamily, "spectocloud");
  b.set_metadata(onnx::meta::kProfile, "full");
  const Value spec = b.input("spectrogram", DType::kFloat32, {"batch", o.n_mels, "frames"},
                             "log-mel spectrogram, standardised per clip");
  const Value emotion = b.input("emotion", DType::kFloat32, {"batch", o.emotion_dim});
  const Value midi = b.input("midi_features", DType::kFloat32, {"batch", o.midi_features});

  const auto& strides = SpectocloudImpl::kStrides;
  Value h = b.gelu(conv1d(b, spec, m.conv1, strides[0], "conv1"));
  h = b.gelu(conv1d(b, h, m.conv2, strides[1], "conv2"));
  h = b.transpose(conv1d(b, h, m.conv3, strides[2], "conv3"), {0, 2, 1});  // [B, F', D]
  // Frame time in [-1, 1]: range(F) · 2 / max(F − 1, 1) − min(F − 1, 1).
  const Value frames = dim_scalar(b, h, 1);
  const Value last = b.sub(frames, b.scalar_int64(1));
  const Value denom = b.cast(b.node("Max", {last, b.scalar_int64(1)}), DType::kFloat32);
  const Value shift = b.cast(b.node("Min", {last, b.scalar_int64(1)}), DType::kFloat32);
  const Value t = b.sub(b.mul(position_range(b, b.scalar_int64(0), frames), b.div(b.scalar_float32(2.0f), denom)), shift);
  const Value memory = b.add(h, linear(b, b.unsqueeze(t, {-1}), m.time_embedding, "time_embedding"));

  const Value pooled = b.reduce_mean(h, {1}, false);
  const Value context = linear(b, b.gelu(linear(b, b.concat({pooled, emotion, midi}, 1), m.context1, "context1")),
                               m.context2, "context2");
  Value x = b.add(b.unsqueeze(b.initializer("point_queries", onnx::to_tensor_data(m.point_queries)), {0}),
                  b.unsqueeze(context, {1}));
  for (size_t l = 0; l < m.decoder->size(); ++l) {
    auto* block = m.decoder[l]->as<PointDecoderBlockImpl>();
    auto scope = b.scope("decoder." + std::to_string(l));
    const Value qn = layer_norm(b, x, block->query_norm, "query_norm");
    const Value mn = layer_norm(b, memory, block->memory_norm, "memory_norm");
    {
      auto cross_scope = b.scope("cross");
      const Value q = b.split_heads(linear(b, qn, block->cross->q, "q"), heads, hd);
      const Value kv = b.transpose(b.reshape(linear(b, mn, block->cross->kv, "kv"), {0, 0, 2, heads, hd}),
                                   {2, 0, 3, 1, 4}, "split_kv");
      const Value ctx = b.attention(q, b.gather(kv, b.scalar_int64(0), 0, "k"), b.gather(kv, b.scalar_int64(1), 0, "v"),
                                    scaled(hd));
      x = b.add(x, attention_output(b, ctx, block->cross->out, heads, hd));
    }
    x = b.add(x, mlp(b, layer_norm(b, x, block->mlp_norm, "mlp_norm"), *block->mlp, "mlp"));
  }
  const Value raw = linear(b, layer_norm(b, x, m.out_norm, "out_norm"), m.head, "head");
  b.output(b.tanh(b.slice(raw, {0}, {3}, {2})), "positions", DType::kFloat32, {"batch", o.num_points, 3},
           "x, y, z in [-1, 1]");
  b.output(b.sigmoid(b.slice(raw, {3}, {7}, {2})), "colors", DType::kFloat32, {"batch", o.num_points, 4},
           "RGBA in [0, 1]");
  b.output(b.sigmoid(b.slice(raw, {7}, {10}, {2})), "properties", DType::kFloat32, {"batch", o.num_points, 3},
           "size, glow, depth in [0, 1]");
}

void emit_emotion_model(onnx::ModelBuilder& b, EmotionModelImpl& m) {
  torch::NoGradGuard no_grad;
  const EmotionModelOptions& o = m.options();
  b.set_metadata(onnx::meta::kModelFamily, "emotion");
  b.set_metadata(onnx::meta::kProfile, "full");
  std::vector<Value> parts;
  if (o.use_tokens) {
    const Value ids = b.input("input_ids", DType::kInt64, {"batch", "sequence"});
    const Value mask = b.input("attention_mask", DType::kInt64, {"batch", "sequence"}, "1 for tokens, 0 for padding");
    const int64_t hd = o.encoder.d_model / o.encoder.n_heads;
    const Value allowed = b.unsqueeze(b.cast(mask, DType::kBool), {1, 2});  // [B, 1, 1, T]
    const RotaryTables rotary = rotary_tables(b, positions_from_mask(b, mask), true, hd, o.encoder.rope_base);
    const Value x = b.embedding(ids, onnx::to_tensor_data(m.token_embedding->weight), "token_embedding");
    const Value h = encoder(b, x, *m.encoder, allowed, rotary, "encoder");
    parts.push_back(masked_mean(b, h, b.cast(mask, DType::kFloat32)));
  }
  if (o.use_features) {
    const Value f = b.input("features", DType::kFloat32, {"batch", o.feature_dim}, "the emotion feature vector");
    parts.push_back(emotion_feature_branch(b, m, f));
  }
  const Value fused = b.gelu(linear(b, parts.size() == 1 ? parts[0] : b.concat(parts, 1), m.fusion, "fusion"));
  b.output(b.tanh(linear(b, fused, m.valence_arousal_head, "valence_arousal_head")), "valence_arousal",
           DType::kFloat32, {"batch", 2}, "valence, arousal in [-1, 1]");
  b.output(b.softmax(linear(b, fused, m.quadrant_head, "quadrant_head"), -1), "quadrant", DType::kFloat32,
           {"batch", o.num_quadrants}, "probabilities of Q1..Q4");
}

at::Tensor legacy_emotion_layout() {
  at::Tensor layout = torch::zeros({2, kLegacyEmotionOutput});
  layout[0].narrow(0, 0, kLegacyEmotionBlock).fill_(1.0f);
  layout[1].narrow(0, kLegacyEmotionBlock, kLegacyEmotionBlock).fill_(1.0f);
  return layout;
}

at::Tensor legacy_emotion_output(const at::Tensor& valence_arousal) {
  return valence_arousal.matmul(legacy_emotion_layout().to(valence_arousal.device(), valence_arousal.scalar_type()));
}

bool fits_legacy_emotion_slot(const EmotionModelImpl& m) {
  const EmotionModelOptions& o = m.options();
  return o.use_features && !o.use_tokens && o.feature_dim == kLegacyEmotionInput;
}

void emit_emotion_legacy(onnx::ModelBuilder& b, EmotionModelImpl& m) {
  torch::NoGradGuard no_grad;
  if (!fits_legacy_emotion_slot(m)) {
    throw UsageError("emotion model: the legacy emotionrecognizer slot takes the " +
                     std::to_string(kLegacyEmotionInput) + " emotion features alone (data.inputs: features)");
  }
  b.set_metadata(onnx::meta::kModelFamily, "emotion");
  b.set_metadata(onnx::meta::kProfile, "legacy");
  b.set_metadata("kmidi.legacy.slot", "emotionrecognizer");
  b.set_metadata("kmidi.legacy.output_layout",
                 "0-15 valence, 16-31 arousal (each value repeated, in [-1, 1]); 32-47 dominance, 48-63 complexity "
                 "(not predicted: 0)");
  const Value f = b.input("input", DType::kFloat32, {int64_t{1}, kLegacyEmotionInput},
                          "the 128 emotion features (datasets/features/EmotionFeatures.h)");
  const Value fused = b.gelu(linear(b, emotion_feature_branch(b, m, f), m.fusion, "fusion"));
  const Value va = b.tanh(linear(b, fused, m.valence_arousal_head, "valence_arousal_head"));
  b.output(b.matmul(va, b.initializer("legacy_layout", onnx::to_tensor_data(legacy_emotion_layout()))), "output",
           DType::kFloat32, {int64_t{1}, kLegacyEmotionOutput},
           "valence, arousal, dominance, complexity: 16 values each");
}

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
