#pragma once
// Transformer building blocks shared by the model families: attention with
// rotary positions, cross-attention, the MLP, and a bidirectional encoder.
// Registered names (qkv, out, q, kv, fc1, fc2, attn_norm, mlp_norm) are part
// of every family's checkpoint and ONNX contract.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>

namespace kmidi::models {

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t d_model, int64_t n_heads, double dropout);
  torch::nn::Linear qkv{nullptr}, out{nullptr};
  int64_t n_heads;
  double dropout;
};
TORCH_MODULE(Attention);

class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int64_t d_model, int64_t n_heads, double dropout);
  torch::nn::Linear q{nullptr}, kv{nullptr}, out{nullptr};
  int64_t n_heads;
  double dropout;
};
TORCH_MODULE(CrossAttention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t d_model, int64_t d_ff);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

/// softmax(q kᵀ/√d, masked) v, computed in float32 for stability under bf16
/// autocast. q [B, H, T, Dh], k and v [B, H, S, Dh]; `allowed` is a bool mask
/// broadcastable to [B, H, T, S] or undefined. Masked scores take the lowest
/// finite float, so rows with every key masked give no NaN.
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                  double dropout, bool training);

/// [B, T, H*Dh] from [B, H, T, Dh].
at::Tensor merge_heads(const at::Tensor& x);

/// Rotary position embedding of x [B, H, T, Dh] (half-split rotation: pairs
/// (i, i + Dh/2)) at `positions`, [T] or [B, T], any floating type.
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& positions, double base);
/// The same for positions offset..offset+T-1.
at::Tensor apply_rotary(const at::Tensor& x, int64_t offset, double base);

/// Initialises a linear layer with N(0, std) weights and zero bias.
void init_linear(torch::nn::Linear& layer, double std);

struct EncoderOptions {
  int64_t d_model = 128;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t d_ff = 256;
  double dropout = 0.1;
  double rope_base = 10000.0;
  /// Throws std::invalid_argument naming the first inconsistent field.
  void validate(const std::string& owner) const;
};

class EncoderBlockImpl : public torch::nn::Module {
 public:
  explicit EncoderBlockImpl(const EncoderOptions& o);
  torch::nn::LayerNorm attn_norm{nullptr}, mlp_norm{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(EncoderBlock);

/// Bidirectional pre-LN transformer encoder with rotary positions.
class TransformerEncoderImpl : public torch::nn::Module {
 public:
  explicit TransformerEncoderImpl(EncoderOptions options);
  /// x [B, T, D], mask [B, T] (nonzero = real; undefined = none) → [B, T, D] after the final norm.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask = {});
  const EncoderOptions& options() const { return options_; }
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};

 private:
  EncoderOptions options_;
};
TORCH_MODULE(TransformerEncoder);

/// Mean of x [B, T, D] over positions where mask [B, T] is nonzero (all when undefined).
at::Tensor masked_mean(const at::Tensor& x, const at::Tensor& mask);

}  // namespace kmidi::models
