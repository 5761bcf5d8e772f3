#pragma once
// ONNX emission of the shared transformer pieces (models/Layers.h), so each
// family's graph mirrors its LibTorch forward line by line. Initializer names
// follow the LibTorch parameter names under the builder's current scope.

#include <cstdint>
#include <string>

#include "onnx/ModelBuilder.h"
#include "models/Layers.h"

namespace kmidi::models::onnx_emit {

using onnx::ModelBuilder;
using onnx::Value;

/// torch Linear (weight [out, in] stored transposed).
Value linear(ModelBuilder& b, const Value& x, const torch::nn::Linear& layer, const std::string& name);
/// torch LayerNorm with its epsilon.
Value layer_norm(ModelBuilder& b, const Value& x, const torch::nn::LayerNorm& norm, const std::string& name);
/// fc2(gelu(fc1(x))) in scope `name`.
Value mlp(ModelBuilder& b, const Value& x, const MlpImpl& mlp, const std::string& name);

/// A scalar int64 length: dimension `axis` of `x`.
Value dim_scalar(ModelBuilder& b, const Value& x, int64_t axis);
/// float positions start, start+1, .., start+length-1 (1-D); `start` and
/// `length` are int64 scalars.
Value position_range(ModelBuilder& b, const Value& start, const Value& length);
/// float positions counting real tokens of an int64 mask [B, T]: cumsum − 1, floored at 0.
Value positions_from_mask(ModelBuilder& b, const Value& mask);

/// cos and sin of rotary angles for `positions` ([T], or [B, T] when
/// `per_row`), shaped to broadcast over [B, H, T, head_dim / 2].
struct RotaryTables {
  Value cos, sin;
};
RotaryTables rotary_tables(ModelBuilder& b, const Value& positions, bool per_row, int64_t head_dim, double base);

/// q, k, v [B, H, T, Dh] from an Attention module's fused projection of h [B, T, D] (scope "attn").
struct Qkv {
  Value q, k, v;
};
Qkv project_qkv(ModelBuilder& b, const Value& h, const AttentionImpl& attn, int64_t heads, int64_t head_dim);
/// out(merge_heads(context)) for an Attention or CrossAttention output projection.
Value attention_output(ModelBuilder& b, const Value& context, const torch::nn::Linear& out, int64_t heads,
                       int64_t head_dim);
/// apply_rotary (half-split) on x [B, H, T, head_dim].
Value apply_rotary(ModelBuilder& b, const Value& x, const RotaryTables& tables, int64_t head_dim);

/// A TransformerEncoder (bidirectional, rotary) in scope `name`; `allowed`
/// is a bool key mask [B, 1, 1, T] or empty.
Value encoder(ModelBuilder& b, const Value& x, TransformerEncoderImpl& encoder, const Value& allowed,
              const RotaryTables& rotary, const std::string& name);

/// Mean over axis 1 of x [B, T, D] where mask [B, T] (float) is 1; plain mean when mask is empty.
Value masked_mean(ModelBuilder& b, const Value& x, const Value& mask);

}  // namespace kmidi::models::onnx_emit
