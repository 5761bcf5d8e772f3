#include "models/OnnxLayers.h"

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "onnx/torch/TorchTensors.h"

namespace kmidi::models::onnx_emit {

using onnx::DType;
using onnx::TensorData;
using onnx::to_tensor_data;

Value linear(ModelBuilder& b, const Value& x, const torch::nn::Linear& layer, const std::string& name) {
  if (layer->bias.defined()) return b.linear(x, to_tensor_data(layer->weight), to_tensor_data(layer->bias), name);
  return b.linear(x, to_tensor_data(layer->weight), name);
}

Value layer_norm(ModelBuilder& b, const Value& x, const torch::nn::LayerNorm& norm, const std::string& name) {
  return b.layer_norm(x, to_tensor_data(norm->weight), to_tensor_data(norm->bias),
                      static_cast<float>(norm->options.eps()), name);
}

Value mlp(ModelBuilder& b, const Value& x, const MlpImpl& m, const std::string& name) {
  auto scope = b.scope(name);
  return linear(b, b.gelu(linear(b, x, m.fc1, "fc1")), m.fc2, "fc2");
}

Value dim_scalar(ModelBuilder& b, const Value& x, int64_t axis) {
  return b.squeeze(b.shape_of(x, axis, axis + 1), {0});
}

Value position_range(ModelBuilder& b, const Value& start, const Value& length) {
  const Value ids = b.node("Range", {start, b.add(start, length), b.scalar_int64(1)}, {}, "positions");
  return b.cast(ids, DType::kFloat32);
}

Value positions_from_mask(ModelBuilder& b, const Value& mask) {
  const Value counts = b.node("CumSum", {b.cast(mask, DType::kInt64), b.scalar_int64(1)}, {}, "positions");
  const Value floored = b.node("Max", {b.sub(counts, b.scalar_int64(1)), b.scalar_int64(0)});
  return b.cast(floored, DType::kFloat32);
}

RotaryTables rotary_tables(ModelBuilder& b, const Value& positions, bool per_row, int64_t head_dim, double base) {
  auto scope = b.scope("rotary");
  const int64_t half = head_dim / 2;
  // The same float32 arithmetic as models::apply_rotary: base^(-2i/d).
  const at::Tensor inv_freq =
      torch::pow(base, -torch::arange(0, half, torch::kFloat) * (2.0 / static_cast<double>(head_dim)));
  Value angles = b.mul(b.unsqueeze(positions, {-1}), b.constant(to_tensor_data(inv_freq)), "angles");
  if (per_row) angles = b.unsqueeze(angles, {1});  // [B, 1, T, half]
  return {b.node("Cos", {angles}), b.node("Sin", {angles})};
}

Value apply_rotary(ModelBuilder& b, const Value& x, const RotaryTables& t, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  const Value x1 = b.slice(x, {0}, {half}, {-1}), x2 = b.slice(x, {half}, {head_dim}, {-1});
  return b.concat({b.sub(b.mul(x1, t.cos), b.mul(x2, t.sin)), b.add(b.mul(x2, t.cos), b.mul(x1, t.sin))}, -1,
                  "rotary");
}

Qkv project_qkv(ModelBuilder& b, const Value& h, const AttentionImpl& attn, int64_t heads, int64_t head_dim) {
  const Value fused = linear(b, h, attn.qkv, "qkv");
  const Value parts = b.transpose(b.reshape(fused, {0, 0, 3, heads, head_dim}), {2, 0, 3, 1, 4}, "split_qkv");
  return {b.gather(parts, b.scalar_int64(0), 0, "q"), b.gather(parts, b.scalar_int64(1), 0, "k"),
          b.gather(parts, b.scalar_int64(2), 0, "v")};
}

Value attention_output(ModelBuilder& b, const Value& context, const torch::nn::Linear& out, int64_t heads,
                       int64_t head_dim) {
  return linear(b, b.merge_heads(context, heads, head_dim), out, "out");
}

Value encoder(ModelBuilder& b, const Value& x_in, TransformerEncoderImpl& enc, const Value& allowed,
              const RotaryTables& rotary, const std::string& name) {
  auto scope = b.scope(name);
  const auto& o = enc.options();
  const int64_t heads = o.n_heads, hd = o.d_model / heads;
  onnx::AttentionOptions options;
  options.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  options.allowed = allowed;
  Value x = x_in;
  for (size_t l = 0; l < enc.layers->size(); ++l) {
    auto* block = enc.layers[l]->as<EncoderBlockImpl>();
    auto layer_scope = b.scope("layers." + std::to_string(l));
    const Value h = layer_norm(b, x, block->attn_norm, "attn_norm");
    {
      auto attn_scope = b.scope("attn");
      const Qkv qkv = project_qkv(b, h, *block->attn, heads, hd);
      const Value context = b.attention(apply_rotary(b, qkv.q, rotary, hd), apply_rotary(b, qkv.k, rotary, hd), qkv.v,
                                        options);
      x = b.add(x, attention_output(b, context, block->attn->out, heads, hd));
    }
    x = b.add(x, mlp(b, layer_norm(b, x, block->mlp_norm, "mlp_norm"), *block->mlp, "mlp"));
  }
  return layer_norm(b, x, enc.final_norm, "final_norm");
}

Value masked_mean(ModelBuilder& b, const Value& x, const Value& mask) {
  if (mask.empty()) return b.reduce_mean(x, {1}, false);
  const Value m = b.unsqueeze(mask, {-1});
  const Value total = b.node("ReduceSum", {b.mul(x, m), b.constant_int64s({1})}, {{"keepdims", 0}});
  const Value count = b.node("ReduceSum", {m, b.constant_int64s({1})}, {{"keepdims", 0}});
  return b.div(total, b.node("Max", {count, b.scalar_float32(1.0f)}));
}

}  // namespace kmidi::models::onnx_emit
