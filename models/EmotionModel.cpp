#include "models/EmotionModel.h"

#include <torch/torch.h>

#include <stdexcept>

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

}  // namespace kmidi::models
