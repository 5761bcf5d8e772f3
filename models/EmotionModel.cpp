#include "models/EmotionModel.h"

#include <torch/torch.h>

#include <stdexcept>
#include <vector>

#include "core/Errors.h"
#include "models/OnnxLayers.h"
#include "onnx/Metadata.h"
#include "onnx/torch/TorchTensors.h"

namespace kmidi::models {

void EmotionModelOptions::validate() const {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument("emotion model: " + message);
  };
  require(use_tokens || use_features, "needs tokens, features or both");
  require(!use_tokens || vocab_size > 0, "vocab_size must be positive when tokens are used (it comes from tokenizer.json)");
  require(!use_features || feature_dim > 0, "feature_dim must be positive when features are used");
  require(hidden > 0 && num_quadrants >= 2, "hidden must be positive and num_quadrants >= 2");
  require(dropout >= 0.0 && dropout < 1.0, "dropout must be in [0, 1)");
  if (use_tokens) encoder.validate("emotion model encoder");
}

EmotionModelImpl::EmotionModelImpl(EmotionModelOptions options) : options_(std::move(options)) {
  options_.validate();
  const auto& o = options_;
  int64_t fused = 0;
  if (o.use_tokens) {
    token_embedding = register_module("token_embedding", torch::nn::Embedding(o.vocab_size, o.encoder.d_model));
    {
      torch::NoGradGuard g;
      token_embedding->weight.normal_(0.0, 0.02);
    }
    encoder = register_module("encoder", TransformerEncoder(o.encoder));
    fused += o.encoder.d_model;
  }
  if (o.use_features) {
    feature_mean = register_buffer("feature_mean", torch::zeros({o.feature_dim}));
    feature_std = register_buffer("feature_std", torch::ones({o.feature_dim}));
    feature_in = register_module("feature_in", torch::nn::Linear(o.feature_dim, o.hidden));
    feature_hidden = register_module("feature_hidden", torch::nn::Linear(o.hidden, o.hidden));
    fused += o.hidden;
  }
  fusion = register_module("fusion", torch::nn::Linear(fused, o.hidden));
  valence_arousal_head = register_module("valence_arousal_head", torch::nn::Linear(o.hidden, 2));
  quadrant_head = register_module("quadrant_head", torch::nn::Linear(o.hidden, o.num_quadrants));
}

void EmotionModelImpl::set_feature_statistics(const at::Tensor& mean, const at::Tensor& std) {
  TORCH_CHECK(feature_mean.defined(), "emotion model: no feature branch to standardise");
  TORCH_CHECK(mean.sizes() == feature_mean.sizes() && std.sizes() == feature_std.sizes(),
              "emotion model: feature statistics must be [", options_.feature_dim, "]");
  torch::NoGradGuard g;
  feature_mean.copy_(mean);
  // Constant features would divide by zero; leave them unscaled.
  feature_std.copy_(torch::where(std > 1e-6, std, torch::ones_like(std)));
}

std::tuple<at::Tensor, at::Tensor> EmotionModelImpl::forward(const at::Tensor& input_ids,
                                                              const at::Tensor& attention_mask,
                                                              const at::Tensor& features) {
  const auto& o = options_;
  const bool training = is_training();
  std::vector<at::Tensor> parts;
  if (o.use_tokens) {
    TORCH_CHECK(input_ids.defined() && input_ids.dim() == 2, "emotion model: input_ids must be [batch, sequence]");
    const at::Tensor h = encoder->forward(token_embedding->forward(input_ids), attention_mask);
    parts.push_back(masked_mean(h, attention_mask));
  }
  if (o.use_features) {
    TORCH_CHECK(features.defined() && features.dim() == 2 && features.size(1) == o.feature_dim,
                "emotion model: features must be [batch, ", o.feature_dim, "]");
    const at::Tensor z = (features.to(feature_mean.scalar_type()) - feature_mean) / feature_std;
    at::Tensor h = torch::dropout(torch::gelu(feature_in->forward(z)), o.dropout, training);
    parts.push_back(torch::gelu(feature_hidden->forward(h)));
  }
  const at::Tensor fused =
      torch::dropout(torch::gelu(fusion->forward(torch::cat(parts, 1))), o.dropout, training);
  return {torch::tanh(valence_arousal_head->forward(fused)), quadrant_head->forward(fused)};
}

// ONNX emission: mirrors the forward above (see the tests in tests/models).

using onnx::DType;
using onnx::Value;
using namespace onnx_emit;

namespace {

// Standardisation and the two feature layers: [B, F] → [B, hidden].
Value emotion_feature_branch(onnx::ModelBuilder& b, EmotionModelImpl& m, const Value& features) {
  const Value z = b.div(b.sub(features, b.initializer("feature_mean", onnx::to_tensor_data(m.feature_mean))),
                        b.initializer("feature_std", onnx::to_tensor_data(m.feature_std)));
  const Value h = b.gelu(linear(b, z, m.feature_in, "feature_in"));
  return b.gelu(linear(b, h, m.feature_hidden, "feature_hidden"));
}

}  // namespace

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

}  // namespace kmidi::models
