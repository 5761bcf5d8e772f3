#pragma once
// The MIDI generator: a decoder-only, pre-LayerNorm transformer over a MIDI
// token vocabulary, conditioned on a 64-d emotion vector.
//
// Positions use rotary embeddings computed on the fly, so any sequence length
// works (there is no positional table to overflow). Positions count real tokens
// only (from the attention mask), so left padding does not shift them. Emotion enters either as
// per-layer prefix keys/values (prefix tuning) or through cross-attention to a
// few memory vectors; both are recomputed from the emotion vector on every
// call, which keeps the incremental (KV-cached) path and its ONNX graph free
// of control flow.
//
// Registered module names are the checkpoint and ONNX contract (tested):
//   token_embedding, layers.N.{attn_norm, attn.qkv, attn.out, prefix | cross_norm,
//   cross.q, cross.kv, cross.out, mlp_norm, mlp.fc1, mlp.fc2}, memory (cross mode),
//   final_norm, lm_head (when embeddings are not tied).

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include "models/Layers.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kmidi::models {

enum class Conditioning { kPrefix, kCrossAttention };

/// Parses "prefix" or "cross_attention"; throws std::invalid_argument otherwise.
Conditioning parse_conditioning(const std::string& name);
std::string to_string(Conditioning c);

struct MidiGeneratorOptions {
  int64_t vocab_size = 0;     ///< REQUIRED; from tokenizer.json
  int64_t d_model = 256;      ///< width; divisible by n_heads, head size even
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t d_ff = 1024;        ///< MLP hidden width
  double dropout = 0.1;       ///< residual and attention-probability dropout
  int64_t emotion_dim = 64;   ///< width of the conditioning vector
  Conditioning conditioning = Conditioning::kPrefix;
  int64_t condition_tokens = 4;  ///< prefix length per layer, or cross-attention memory size
  double rope_base = 10000.0;
  bool tie_embeddings = true;  ///< lm_head shares token_embedding's weight

  int64_t head_dim() const { return d_model / n_heads; }
  /// Throws std::invalid_argument naming the first inconsistent field.
  void validate() const;
};

/// Per-layer keys (rotated) and values of the tokens seen so far, [B, H, S, Dh].
struct KVCache {
  std::vector<at::Tensor> keys, values;
  int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }
};

class DecoderBlockImpl : public torch::nn::Module {
 public:
  explicit DecoderBlockImpl(const MidiGeneratorOptions& o);
  torch::nn::LayerNorm attn_norm{nullptr}, cross_norm{nullptr}, mlp_norm{nullptr};
  Attention attn{nullptr};
  CrossAttention cross{nullptr};
  torch::nn::Linear prefix{nullptr};  ///< emotion → P prefix keys and values
  Mlp mlp{nullptr};
};
TORCH_MODULE(DecoderBlock);

class MidiGeneratorImpl : public torch::nn::Module {
 public:
  explicit MidiGeneratorImpl(MidiGeneratorOptions options);

  /// input_ids [B, T] int64, emotion [B, E] float, attention_mask [B, T]
  /// (nonzero = real token; undefined = no padding) → logits [B, T, V].
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& emotion,
                     const at::Tensor& attention_mask = {});

  /// Appends `input_ids` [B, T'] after the cached tokens and returns their logits
  /// [B, T', V]; `cache` grows in place. Equal to forward() on the whole sequence.
  at::Tensor forward_cached(const at::Tensor& input_ids, const at::Tensor& emotion, KVCache& cache);

  const MidiGeneratorOptions& options() const { return options_; }
  /// The output projection's weight [V, D] (the embedding's when tied).
  const at::Tensor& output_weight() const;

  torch::nn::Embedding token_embedding{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::nn::Linear memory{nullptr};  ///< cross-attention mode: emotion → memory vectors
  torch::nn::LayerNorm final_norm{nullptr};
  torch::nn::Linear lm_head{nullptr};  ///< only when embeddings are not tied

 private:
  at::Tensor run(const at::Tensor& input_ids, const at::Tensor& emotion, const at::Tensor& attention_mask,
                 KVCache* cache);
  MidiGeneratorOptions options_;
};
TORCH_MODULE(MidiGenerator);

}  // namespace kmidi::models
