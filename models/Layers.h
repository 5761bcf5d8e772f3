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

/// Inverted dropout: zeroes each element with probability p and scales the
/// others by 1/(1 - p); x itself when not training or p is 0. On CPU the mask
/// comes from a counter-based hash (SplitMix64 over the element index) seeded
/// by one draw from the default CPU generator: the distribution of
/// torch::dropout (p rounded to a multiple of 2^-16, the scale matching it)
/// at a fraction of the cost of LibTorch's serial per-element Bernoulli draws,
/// reproducible under torch::manual_seed and independent of the thread count.
/// Other devices use torch::dropout.
at::Tensor dropout(const at::Tensor& x, double p, bool training);

/// softmax(q kᵀ/√d, masked) v, computed in float32 for stability under bf16
/// autocast. q [B, H, T, Dh], k and v [B, H, S, Dh]; `allowed` is a bool mask
/// broadcastable to [B, H, T, S] or undefined. Masked scores take the lowest
/// finite float, so rows with every key masked give no NaN.
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                  double dropout, bool training);

/// [B, T, H*Dh] from [B, H, T, Dh].
at::Tensor merge_heads(const at::Tensor& x);

/// Additive form of a bool mask for causal_attention(): 0 where allowed, the
/// lowest finite value of `dtype` elsewhere (a finite fill keeps rows with
/// every key masked free of NaN), in the mask's shape.
at::Tensor attention_bias(const at::Tensor& allowed, c10::ScalarType dtype);

/// The dtype attention scores have on `device` now: autocast's lower
/// precision type when autocast is on there, else `weights`.
c10::ScalarType score_dtype(c10::Device device, c10::ScalarType weights);

/// Self-attention where query row t (of T) sees at most the first S - T + t + 1
/// keys (causal after S - T always-visible or cached keys), with the heads
/// merged: softmax(q kᵀ/√d + bias) v → [B, T, H*Dh]. q [B, H, T, Dh]; k, v
/// [B, H, S, Dh] (contiguous is fastest); bias from attention_bias(), [B|1, 1,
/// T, S], in score_dtype() (holding the causal mask and any padding). Query
/// rows go in blocks of `block_rows`, each block multiplying only the keys it
/// can see: about half the work and score memory of full attention for long
/// sequences, the same result for every row that sees at least one key. Under
/// bf16 autocast the scores stay bf16: LibTorch's bf16 softmax accumulates in
/// float and rounds once, exactly as softmax in float32 then a cast (tested).
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                            double dropout, bool training, int64_t block_rows);

/// cos and sin of the rotary angles at `positions` ([T] or [B, T]) for head
/// size `head_dim`, shaped to broadcast over [..., B, H, T, Dh/2]: [T, Dh/2]
/// or [B, 1, T, Dh/2], float32. Computed once per forward, shared by layers.
struct RotaryAngles {
  at::Tensor cos, sin;
};
RotaryAngles rotary_angles(const at::Tensor& positions, int64_t head_dim, double base);

/// Rotary position embedding of x [..., T, Dh] (half-split rotation: pairs
/// (i, i + Dh/2)) with precomputed tables, in x's dtype.
at::Tensor apply_rotary(const at::Tensor& x, const RotaryAngles& angles);
/// The same at `positions`, [T] or [B, T], for x [B, H, T, Dh].
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
