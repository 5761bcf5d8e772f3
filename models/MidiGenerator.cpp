#include "models/MidiGenerator.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace {
/// Query rows per block of causal attention (models/Layers.h): small enough
/// to skip most masked keys at training lengths, large enough for good GEMMs.
constexpr int64_t kAttentionBlockRows = 128;
}  // namespace

namespace kmidi::models {

Conditioning parse_conditioning(const std::string& name) {
  if (name == "prefix") return Conditioning::kPrefix;
  if (name == "cross_attention") return Conditioning::kCrossAttention;
  throw std::invalid_argument("unknown conditioning '" + name + "'; expected prefix or cross_attention");
}

std::string to_string(Conditioning c) {
  return c == Conditioning::kPrefix ? "prefix" : "cross_attention";
}

void MidiGeneratorOptions::validate() const {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument("MIDI generator: " + message);
  };
  require(vocab_size > 0, "vocab_size must be positive (it comes from tokenizer.json), got " + std::to_string(vocab_size));
  require(d_model > 0 && n_heads > 0 && n_layers > 0 && d_ff > 0, "d_model, n_heads, n_layers and d_ff must be positive");
  require(d_model % n_heads == 0, "d_model " + std::to_string(d_model) + " is not divisible by n_heads " +
                                      std::to_string(n_heads));
  require(head_dim() % 2 == 0, "head size d_model/n_heads must be even for rotary embeddings, got " +
                                   std::to_string(head_dim()));
  require(dropout >= 0.0 && dropout < 1.0, "dropout must be in [0, 1)");
  require(emotion_dim > 0, "emotion_dim must be positive");
  require(condition_tokens > 0, "condition_tokens must be positive");
  require(rope_base > 1.0, "rope_base must be > 1");
}


DecoderBlockImpl::DecoderBlockImpl(const MidiGeneratorOptions& o) {
  const std::vector<int64_t> shape{o.d_model};
  attn_norm = register_module("attn_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions(shape)));
  attn = register_module("attn", Attention(o.d_model, o.n_heads, o.dropout));
  if (o.conditioning == Conditioning::kPrefix) {
    prefix = register_module("prefix", torch::nn::Linear(o.emotion_dim, 2 * o.condition_tokens * o.d_model));
  } else {
    cross_norm = register_module("cross_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions(shape)));
    cross = register_module("cross", CrossAttention(o.d_model, o.n_heads, o.dropout));
  }
  mlp_norm = register_module("mlp_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions(shape)));
  mlp = register_module("mlp", Mlp(o.d_model, o.d_ff));
}

MidiGeneratorImpl::MidiGeneratorImpl(MidiGeneratorOptions options) : options_(std::move(options)) {
  options_.validate();
  const auto& o = options_;
  token_embedding = register_module("token_embedding", torch::nn::Embedding(o.vocab_size, o.d_model));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.n_layers; ++i) layers->push_back(DecoderBlock(o));
  if (o.conditioning == Conditioning::kCrossAttention) {
    memory = register_module("memory", torch::nn::Linear(o.emotion_dim, o.condition_tokens * o.d_model));
  }
  final_norm = register_module("final_norm",
                               torch::nn::LayerNorm(torch::nn::LayerNormOptions(std::vector<int64_t>{o.d_model})));
  if (!o.tie_embeddings) {
    lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(o.d_model, o.vocab_size).bias(false)));
  }

  // GPT-2 style: N(0, 0.02), residual output projections scaled down by depth.
  const double std = 0.02, residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(o.n_layers));
  {
    torch::NoGradGuard no_grad;
    token_embedding->weight.normal_(0.0, std);
  }
  for (const auto& module : *layers) {
    auto* block = module->as<DecoderBlockImpl>();
    init_linear(block->attn->qkv, std);
    init_linear(block->attn->out, residual_std);
    if (block->prefix) init_linear(block->prefix, std);
    if (block->cross) {
      init_linear(block->cross->q, std);
      init_linear(block->cross->kv, std);
      init_linear(block->cross->out, residual_std);
    }
    init_linear(block->mlp->fc1, std);
    init_linear(block->mlp->fc2, residual_std);
  }
  if (memory) init_linear(memory, std);
  if (lm_head) init_linear(lm_head, std);
}

const at::Tensor& MidiGeneratorImpl::output_weight() const {
  return options_.tie_embeddings ? token_embedding->weight : lm_head->weight;
}

at::Tensor MidiGeneratorImpl::forward(const at::Tensor& input_ids, const at::Tensor& emotion,
                                      const at::Tensor& attention_mask) {
  return run(input_ids, emotion, attention_mask, nullptr);
}

at::Tensor MidiGeneratorImpl::forward_cached(const at::Tensor& input_ids, const at::Tensor& emotion,
                                             KVCache& cache) {
  return run(input_ids, emotion, {}, &cache);
}

at::Tensor MidiGeneratorImpl::run(const at::Tensor& input_ids, const at::Tensor& emotion,
                                  const at::Tensor& attention_mask, KVCache* cache) {
  const auto& o = options_;
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [batch, sequence], got ", input_ids.sizes());
  TORCH_CHECK(emotion.dim() == 2 && emotion.size(0) == input_ids.size(0) && emotion.size(1) == o.emotion_dim,
              "emotion must be [", input_ids.size(0), ", ", o.emotion_dim, "], got ", emotion.sizes());
  const int64_t batch = input_ids.size(0), steps = input_ids.size(1), heads = o.n_heads, hd = o.head_dim();
  const int64_t past = cache ? cache->length() : 0, total = past + steps;
  const double p = o.dropout;
  const bool training = is_training();
  if (cache && cache->keys.empty()) {
    cache->keys.resize(static_cast<size_t>(o.n_layers));
    cache->values.resize(static_cast<size_t>(o.n_layers));
  }

  // Token keys visible to each query: causal over the whole (cached) sequence,
  // minus padding. Prefix keys are always visible.
  const auto bool_opts = torch::TensorOptions().dtype(torch::kBool).device(input_ids.device());
  at::Tensor allowed = torch::ones({steps, total}, bool_opts).tril(past).view({1, 1, steps, total});
  if (attention_mask.defined()) {
    TORCH_CHECK(attention_mask.sizes() == input_ids.sizes(), "attention_mask must match input_ids, got ",
                attention_mask.sizes());
    allowed = allowed.logical_and(attention_mask.to(torch::kBool).view({batch, 1, 1, total}));
  }
  if (o.conditioning == Conditioning::kPrefix) {
    allowed = torch::cat({torch::ones({allowed.size(0), 1, steps, o.condition_tokens}, bool_opts),
                          allowed.expand({allowed.size(0), 1, steps, total})}, -1);
  }

  // With left padding and no prefix, a pad row may see no key at all;
  // unblocked attention keeps such rows as they always were (uniform).
  const bool rows_may_see_nothing = attention_mask.defined() && o.conditioning != Conditioning::kPrefix;
  const int64_t block_rows = rows_may_see_nothing ? steps : kAttentionBlockRows;
  const at::Tensor bias = attention_bias(allowed, score_dtype(input_ids.device(), token_embedding->weight.scalar_type()));

  // Real tokens count positions; pads take their left neighbour's (unused).
  at::Tensor positions = torch::arange(past, total, torch::TensorOptions().device(input_ids.device()));
  if (attention_mask.defined()) {
    positions = (attention_mask.to(torch::kLong).cumsum(1) - 1).clamp_min(0);
  }
  const RotaryAngles rope = rotary_angles(positions, hd, o.rope_base);

  const at::Tensor emotion_f = emotion.to(token_embedding->weight.scalar_type());
  at::Tensor memory_kv_source;
  if (memory) memory_kv_source = memory->forward(emotion_f).view({batch, o.condition_tokens, o.d_model});

  at::Tensor x = models::dropout(token_embedding->forward(input_ids), p, training);
  for (size_t l = 0; l < layers->size(); ++l) {
    auto* block = layers[l]->as<DecoderBlockImpl>();
    // Self-attention.
    const at::Tensor qkv =
        block->attn->qkv->forward(block->attn_norm->forward(x)).view({batch, steps, 3, heads, hd}).permute({2, 0, 3, 1, 4});
    const at::Tensor qk = apply_rotary(qkv.narrow(0, 0, 2), rope);  // q and k in one pass
    const at::Tensor q = qk[0];
    at::Tensor k = qk[1];
    at::Tensor v = qkv[2];
    if (cache) {
      if (past > 0) {
        k = torch::cat({cache->keys[l], k}, 2);
        v = torch::cat({cache->values[l], v}, 2);
      }
      cache->keys[l] = k;
      cache->values[l] = v;
    }
    if (block->prefix) {
      const at::Tensor pkv =
          block->prefix->forward(emotion_f).view({batch, 2, o.condition_tokens, heads, hd}).permute({1, 0, 3, 2, 4});
      k = torch::cat({pkv[0], k}, 2);
      v = torch::cat({pkv[1], v}, 2);
    }
    // Contiguous values let each block's product read them without a copy.
    const at::Tensor context = causal_attention(q, k, v.contiguous(), bias, p, training, block_rows);
    x = x + models::dropout(block->attn->out->forward(context), p, training);

    // Cross-attention to the emotion memory.
    if (block->cross) {
      const at::Tensor cq =
          block->cross->q->forward(block->cross_norm->forward(x)).view({batch, steps, heads, hd}).permute({0, 2, 1, 3});
      const at::Tensor ckv = block->cross->kv->forward(memory_kv_source)
                                 .view({batch, o.condition_tokens, 2, heads, hd})
                                 .permute({2, 0, 3, 1, 4});
      const at::Tensor cross_context = attend(cq, ckv[0], ckv[1], {}, p, training);
      x = x + models::dropout(block->cross->out->forward(merge_heads(cross_context)), p, training);
    }

    // Feed-forward.
    const at::Tensor hidden = torch::gelu(block->mlp->fc1->forward(block->mlp_norm->forward(x)));
    x = x + models::dropout(block->mlp->fc2->forward(hidden), p, training);
  }
  x = final_norm->forward(x);
  return torch::nn::functional::linear(x, output_weight());
}

}  // namespace kmidi::models
