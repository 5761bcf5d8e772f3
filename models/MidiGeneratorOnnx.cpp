#include "models/MidiGeneratorOnnx.h"

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "onnx/torch/TorchTensors.h"
#include "onnx/Metadata.h"
#include "models/OnnxLayers.h"

namespace kmidi::models {

using onnx::DType;
using onnx::Value;
using namespace onnx_emit;

std::string past_key_name(int64_t layer) { return "past_key_" + std::to_string(layer); }
std::string past_value_name(int64_t layer) { return "past_value_" + std::to_string(layer); }
std::string present_key_name(int64_t layer) { return "present_key_" + std::to_string(layer); }
std::string present_value_name(int64_t layer) { return "present_value_" + std::to_string(layer); }

void emit_midi_generator(onnx::ModelBuilder& b, MidiGeneratorImpl& m, bool incremental) {
  torch::NoGradGuard no_grad;
  const MidiGeneratorOptions& o = m.options();
  const int64_t heads = o.n_heads, hd = o.head_dim(), layers = o.n_layers, cond = o.condition_tokens;
  b.set_metadata(onnx::meta::kModelFamily, "generator");
  b.set_metadata(onnx::meta::kProfile, incremental ? "incremental" : "full");

  const Value ids = b.input("input_ids", DType::kInt64, {"batch", "sequence"}, "token ids from the tokenizer");
  const Value emotion = b.input("emotion", DType::kFloat32, {"batch", o.emotion_dim},
                                "valence, arousal, intensity in [-1, 1], then zeros");
  std::vector<Value> past_k, past_v;
  if (incremental) {
    for (int64_t l = 0; l < layers; ++l) {
      past_k.push_back(b.input(past_key_name(l), DType::kFloat32, {"batch", heads, "past_sequence", hd}));
      past_v.push_back(b.input(past_value_name(l), DType::kFloat32, {"batch", heads, "past_sequence", hd}));
    }
  }

  Value x = b.embedding(ids, onnx::to_tensor_data(m.token_embedding->weight), "token_embedding");
  const Value start = incremental ? dim_scalar(b, past_k[0], 2) : b.scalar_int64(0);
  const RotaryTables rotary = rotary_tables(b, position_range(b, start, dim_scalar(b, ids, 1)), false, hd, o.rope_base);
  Value memory;
  if (m.memory) memory = b.reshape(linear(b, emotion, m.memory, "memory"), {0, cond, o.d_model});

  onnx::AttentionOptions causal;
  causal.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  causal.causal = true;  // prefix keys come first, so the causal rule lets every query see them
  onnx::AttentionOptions plain;
  plain.scale = causal.scale;
  std::vector<std::pair<Value, Value>> presents;

  for (int64_t l = 0; l < layers; ++l) {
    auto* block = m.layers[static_cast<size_t>(l)]->as<DecoderBlockImpl>();
    auto layer_scope = b.scope("layers." + std::to_string(l));
    Value prefix_k, prefix_v;
    if (block->prefix) {
      const Value pkv = b.transpose(b.reshape(linear(b, emotion, block->prefix, "prefix"), {0, 2, cond, heads, hd}),
                                    {1, 0, 3, 2, 4}, "split_prefix");
      prefix_k = b.gather(pkv, b.scalar_int64(0), 0, "prefix_k");
      prefix_v = b.gather(pkv, b.scalar_int64(1), 0, "prefix_v");
    }
    const Value h = layer_norm(b, x, block->attn_norm, "attn_norm");
    {
      auto attn_scope = b.scope("attn");
      const Qkv qkv = project_qkv(b, h, *block->attn, heads, hd);
      const Value q = apply_rotary(b, qkv.q, rotary, hd);
      Value k = apply_rotary(b, qkv.k, rotary, hd), v = qkv.v;
      if (incremental) {
        k = b.concat({past_k[static_cast<size_t>(l)], k}, 2, "cache_k");
        v = b.concat({past_v[static_cast<size_t>(l)], v}, 2, "cache_v");
        presents.emplace_back(k, v);
      }
      Value keys = k, values = v;
      if (block->prefix) {
        keys = b.concat({prefix_k, k}, 2, "keys");
        values = b.concat({prefix_v, v}, 2, "values");
      }
      x = b.add(x, attention_output(b, b.attention(q, keys, values, causal), block->attn->out, heads, hd));
    }
    if (block->cross) {
      const Value hc = layer_norm(b, x, block->cross_norm, "cross_norm");
      auto cross_scope = b.scope("cross");
      const Value q = b.split_heads(linear(b, hc, block->cross->q, "q"), heads, hd);
      const Value kv = b.transpose(b.reshape(linear(b, memory, block->cross->kv, "kv"), {0, 0, 2, heads, hd}),
                                   {2, 0, 3, 1, 4}, "split_kv");
      const Value context =
          b.attention(q, b.gather(kv, b.scalar_int64(0), 0, "k"), b.gather(kv, b.scalar_int64(1), 0, "v"), plain);
      x = b.add(x, attention_output(b, context, block->cross->out, heads, hd));
    }
    x = b.add(x, mlp(b, layer_norm(b, x, block->mlp_norm, "mlp_norm"), *block->mlp, "mlp"));
  }
  x = layer_norm(b, x, m.final_norm, "final_norm");
  // A tied head stores the embedding a second time, transposed for MatMul.
  const Value logits = m.lm_head ? linear(b, x, m.lm_head, "lm_head")
                                 : b.linear(x, onnx::to_tensor_data(m.token_embedding->weight), "lm_head");
  b.output(logits, "logits", DType::kFloat32, {"batch", "sequence", o.vocab_size}, "next-token logits");
  for (size_t l = 0; l < presents.size(); ++l) {
    b.output(presents[l].first, present_key_name(static_cast<int64_t>(l)), DType::kFloat32,
             {"batch", heads, "total_sequence", hd});
    b.output(presents[l].second, present_value_name(static_cast<int64_t>(l)), DType::kFloat32,
             {"batch", heads, "total_sequence", hd});
  }
}

}  // namespace kmidi::models
