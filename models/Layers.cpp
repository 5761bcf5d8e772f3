#include "models/Layers.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "core/SplitMix64.h"
#include "core/TorchCompat.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace kmidi::models {

namespace {

using random::splitmix64_finalise;

uint64_t draw_cpu_seed() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
}

/// 0 or 1/(1 - p') per element in x's dtype, p' = p rounded to 2^-16: each
/// 64-bit hash gives four 16-bit lanes, a lane below the threshold drops.
at::Tensor dropout_mask(const at::Tensor& x, double p) {
  at::Tensor mask = at::empty(x.sizes(), x.options().requires_grad(false).memory_format(at::MemoryFormat::Contiguous));
  const auto threshold = static_cast<uint64_t>(std::llround(p * 65536.0));
  const double scale = 65536.0 / static_cast<double>(65536 - threshold);
  const uint64_t seed = draw_cpu_seed();
  const int64_t n = mask.numel(), words = (n + 3) / 4;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, mask.scalar_type(), "kmidi_dropout_mask", [&] {
    scalar_t* out = mask.data_ptr<scalar_t>();
    const auto kept = static_cast<scalar_t>(scale), dropped = static_cast<scalar_t>(0);
    at::parallel_for(0, words, 2048, [&](int64_t begin, int64_t end) {
      for (int64_t w = begin; w < end; ++w) {
        const uint64_t h = splitmix64_finalise(seed + static_cast<uint64_t>(w + 1) * random::kSplitMixGolden);
        const int64_t first = 4 * w, lanes = std::min<int64_t>(4, n - first);
        for (int64_t lane = 0; lane < lanes; ++lane) {
          out[first + lane] = ((h >> (16 * lane)) & 0xFFFF) < threshold ? dropped : kept;
        }
      }
    });
  });
  return mask;
}

}  // namespace

at::Tensor dropout(const at::Tensor& x, double p, bool training) {
  if (!training || p <= 0.0) return x;
  if (!x.device().is_cpu() || p >= 1.0) return torch::dropout(x, p, true);
  return x * dropout_mask(x, p);
}

void init_linear(torch::nn::Linear& layer, double std) {
  torch::NoGradGuard no_grad;
  layer->weight.normal_(0.0, std);
  if (layer->bias.defined()) layer->bias.zero_();
}

at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                  double dropout, bool training) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor scores = torch::matmul(q, k.transpose(-2, -1)).to(torch::kFloat) * scale;
  if (allowed.defined()) {
    // A finite fill keeps rows whose keys are all masked (left padding) free of NaN.
    scores = scores.masked_fill(allowed.logical_not(), std::numeric_limits<float>::lowest());
  }
  at::Tensor probs = torch::softmax(scores, -1).to(v.scalar_type());
  if (training && dropout > 0.0) probs = models::dropout(probs, dropout, true);
  return torch::matmul(probs, v);
}

at::Tensor merge_heads(const at::Tensor& x) {
  return x.permute({0, 2, 1, 3}).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

at::Tensor attention_bias(const at::Tensor& allowed, c10::ScalarType dtype) {
  at::Tensor bias = torch::zeros(allowed.sizes(), allowed.options().dtype(dtype));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dtype, "kmidi_attention_bias", [&] {
    bias.masked_fill_(allowed.logical_not(), std::numeric_limits<scalar_t>::lowest());
  });
  return bias;
}

c10::ScalarType score_dtype(c10::Device device, c10::ScalarType weights) {
  return compat::is_autocast_enabled(device.type()) ? compat::autocast_dtype(device.type()) : weights;
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                            double dropout, bool training, int64_t block_rows) {
  const int64_t batch = q.size(0), heads = q.size(1), steps = q.size(2), head_dim = q.size(3);
  const int64_t always_visible = k.size(2) - steps;
  TORCH_CHECK(always_visible >= 0, "causal_attention: ", steps, " queries but only ", k.size(2), " keys");
  TORCH_CHECK(block_rows > 0, "causal_attention: block_rows must be positive");
  // Scaling q (T x Dh) is cheaper than scaling the scores (T x S).
  const at::Tensor scaled_q = q * (1.0 / std::sqrt(static_cast<double>(head_dim)));
  std::vector<at::Tensor> blocks;
  for (int64_t first = 0; first < steps; first += block_rows) {
    const int64_t rows = std::min(block_rows, steps - first);
    const int64_t keys = always_visible + first + rows;  // keys past these are masked for every row of the block
    const at::Tensor kb = k.narrow(2, 0, keys), vb = v.narrow(2, 0, keys);
    const at::Tensor scores =
        torch::matmul(scaled_q.narrow(2, first, rows), kb.transpose(-2, -1)) + bias.narrow(-2, first, rows).narrow(-1, 0, keys);
    at::Tensor probs = torch::softmax(scores, -1).to(v.scalar_type());
    if (training && dropout > 0.0) probs = models::dropout(probs, dropout, true);
    blocks.push_back(torch::matmul(probs, vb).transpose(1, 2));  // [B, rows, H, Dh]
  }
  const at::Tensor context = blocks.size() == 1 ? blocks[0].contiguous() : torch::cat(blocks, 1);
  return context.view({batch, steps, heads * head_dim});
}

RotaryAngles rotary_angles(const at::Tensor& positions, int64_t head_dim, double base) {
  const int64_t half = head_dim / 2;
  const auto fopts = torch::TensorOptions().dtype(torch::kFloat).device(positions.device());
  const at::Tensor inv_freq =
      torch::pow(base, -torch::arange(0, half, fopts) * (2.0 / static_cast<double>(head_dim)));
  // [T, Dh/2] or [B, 1, T, Dh/2]: broadcasts over heads.
  at::Tensor angles = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq;
  if (positions.dim() == 2) angles = angles.unsqueeze(1);
  return RotaryAngles{angles.cos(), angles.sin()};
}

at::Tensor apply_rotary(const at::Tensor& x, const RotaryAngles& angles) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor cos = angles.cos.to(x.scalar_type()), sin = angles.sin.to(x.scalar_type());
  const at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  // Two fused multiply-adds per half instead of two products and a sum.
  return torch::cat({(x1 * cos).addcmul_(x2, sin, -1.0), (x2 * cos).addcmul_(x1, sin)}, -1);
}

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& positions, double base) {
  return apply_rotary(x, rotary_angles(positions, x.size(3), base));
}

at::Tensor apply_rotary(const at::Tensor& x, int64_t offset, double base) {
  return apply_rotary(x, torch::arange(offset, offset + x.size(2), torch::TensorOptions().device(x.device())), base);
}

AttentionImpl::AttentionImpl(int64_t d_model, int64_t heads, double p) : n_heads(heads), dropout(p) {
  qkv = register_module("qkv", torch::nn::Linear(d_model, 3 * d_model));
  out = register_module("out", torch::nn::Linear(d_model, d_model));
}

CrossAttentionImpl::CrossAttentionImpl(int64_t d_model, int64_t heads, double p) : n_heads(heads), dropout(p) {
  q = register_module("q", torch::nn::Linear(d_model, d_model));
  kv = register_module("kv", torch::nn::Linear(d_model, 2 * d_model));
  out = register_module("out", torch::nn::Linear(d_model, d_model));
}

MlpImpl::MlpImpl(int64_t d_model, int64_t d_ff) {
  fc1 = register_module("fc1", torch::nn::Linear(d_model, d_ff));
  fc2 = register_module("fc2", torch::nn::Linear(d_ff, d_model));
}

void EncoderOptions::validate(const std::string& owner) const {
  auto require = [&](bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument(owner + ": " + message);
  };
  require(d_model > 0 && n_heads > 0 && n_layers >= 0 && d_ff > 0, "d_model, n_heads and d_ff must be positive");
  require(d_model % n_heads == 0, "d_model " + std::to_string(d_model) + " is not divisible by n_heads " +
                                      std::to_string(n_heads));
  require((d_model / n_heads) % 2 == 0, "head size d_model/n_heads must be even for rotary embeddings");
  require(dropout >= 0.0 && dropout < 1.0, "dropout must be in [0, 1)");
}

EncoderBlockImpl::EncoderBlockImpl(const EncoderOptions& o) {
  const std::vector<int64_t> shape{o.d_model};
  attn_norm = register_module("attn_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions(shape)));
  attn = register_module("attn", Attention(o.d_model, o.n_heads, o.dropout));
  mlp_norm = register_module("mlp_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions(shape)));
  mlp = register_module("mlp", Mlp(o.d_model, o.d_ff));
}

TransformerEncoderImpl::TransformerEncoderImpl(EncoderOptions options) : options_(std::move(options)) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < options_.n_layers; ++i) layers->push_back(EncoderBlock(options_));
  final_norm = register_module(
      "final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions(std::vector<int64_t>{options_.d_model})));
  const double std = 0.02, residual_std = 0.02 / std::sqrt(2.0 * std::max<int64_t>(1, options_.n_layers));
  for (const auto& module : *layers) {
    auto* block = module->as<EncoderBlockImpl>();
    init_linear(block->attn->qkv, std);
    init_linear(block->attn->out, residual_std);
    init_linear(block->mlp->fc1, std);
    init_linear(block->mlp->fc2, residual_std);
  }
}

at::Tensor TransformerEncoderImpl::forward(const at::Tensor& x_in, const at::Tensor& mask) {
  const int64_t batch = x_in.size(0), steps = x_in.size(1), heads = options_.n_heads;
  const int64_t hd = options_.d_model / heads;
  const double p = options_.dropout;
  const bool training = is_training();
  at::Tensor allowed;
  at::Tensor positions = torch::arange(steps, torch::TensorOptions().device(x_in.device()));
  if (mask.defined()) {
    allowed = mask.to(torch::kBool).view({batch, 1, 1, steps});
    positions = (mask.to(torch::kLong).cumsum(1) - 1).clamp_min(0);
  }
  const RotaryAngles rope = rotary_angles(positions, hd, options_.rope_base);
  at::Tensor x = x_in;
  for (const auto& module : *layers) {
    auto* block = module->as<EncoderBlockImpl>();
    const at::Tensor qkv = block->attn->qkv->forward(block->attn_norm->forward(x))
                               .view({batch, steps, 3, heads, hd})
                               .permute({2, 0, 3, 1, 4});
    const at::Tensor qk = apply_rotary(qkv.narrow(0, 0, 2), rope);  // q and k in one pass
    const at::Tensor context = attend(qk[0], qk[1], qkv[2], allowed, p, training);
    x = x + models::dropout(block->attn->out->forward(merge_heads(context)), p, training);
    const at::Tensor hidden = torch::gelu(block->mlp->fc1->forward(block->mlp_norm->forward(x)));
    x = x + models::dropout(block->mlp->fc2->forward(hidden), p, training);
  }
  return final_norm->forward(x);
}

at::Tensor masked_mean(const at::Tensor& x, const at::Tensor& mask) {
  if (!mask.defined()) return x.mean(1);
  const at::Tensor m = mask.to(x.scalar_type()).unsqueeze(-1);
  return (x * m).sum(1) / m.sum(1).clamp_min(1.0);
}

}  // namespace kmidi::models
