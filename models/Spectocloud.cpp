#include "models/Spectocloud.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

#include "models/OnnxLayers.h"
#include "onnx/Metadata.h"
#include "onnx/torch/TorchTensors.h"

namespace kmidi::models {

void SpectocloudOptions::validate() const {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument("spectocloud: " + message);
  };
  require(n_mels > 0 && emotion_dim > 0 && midi_features > 0 && num_points > 0, "input and output sizes must be positive");
  require(conv_channels > 0 && d_model > 0 && d_ff > 0 && decoder_layers >= 1, "layer sizes must be positive");
  require(n_heads > 0 && d_model % n_heads == 0, "d_model must be divisible by n_heads");
  require(dropout >= 0.0 && dropout < 1.0, "dropout must be in [0, 1)");
}

PointDecoderBlockImpl::PointDecoderBlockImpl(int64_t d_model, int64_t n_heads, int64_t d_ff, double dropout) {
  const std::vector<int64_t> shape{d_model};
  query_norm = register_module("query_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions(shape)));
  memory_norm = register_module("memory_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions(shape)));
  cross = register_module("cross", CrossAttention(d_model, n_heads, dropout));
  mlp_norm = register_module("mlp_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions(shape)));
  mlp = register_module("mlp", Mlp(d_model, d_ff));
}

SpectocloudImpl::SpectocloudImpl(SpectocloudOptions options) : options_(std::move(options)) {
  options_.validate();
  const auto& o = options_;
  using torch::nn::Conv1dOptions;
  auto conv = [](int64_t in, int64_t out, int64_t stride) {
    return torch::nn::Conv1d(Conv1dOptions(in, out, kKernel).stride(stride).padding(kPadding));
  };
  conv1 = register_module("conv1", conv(o.n_mels, o.conv_channels, kStrides[0]));
  conv2 = register_module("conv2", conv(o.conv_channels, o.conv_channels, kStrides[1]));
  conv3 = register_module("conv3", conv(o.conv_channels, o.d_model, kStrides[2]));
  time_embedding = register_module("time_embedding", torch::nn::Linear(1, o.d_model));
  context1 = register_module("context1", torch::nn::Linear(o.d_model + o.emotion_dim + o.midi_features, o.d_model));
  context2 = register_module("context2", torch::nn::Linear(o.d_model, o.d_model));
  // Unit-scale queries: each point starts distinct, as a fixed random template.
  point_queries = register_parameter("point_queries", torch::randn({o.num_points, o.d_model}));
  decoder = register_module("decoder", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.decoder_layers; ++i) decoder->push_back(PointDecoderBlock(o.d_model, o.n_heads, o.d_ff, o.dropout));
  out_norm = register_module("out_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions(std::vector<int64_t>{o.d_model})));
  head = register_module("head", torch::nn::Linear(o.d_model, 10));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> SpectocloudImpl::forward(const at::Tensor& spectrogram,
                                                                        const at::Tensor& emotion,
                                                                        const at::Tensor& midi_features) {
  const auto& o = options_;
  TORCH_CHECK(spectrogram.dim() == 3 && spectrogram.size(1) == o.n_mels, "spectrogram must be [batch, ", o.n_mels,
              ", frames], got ", spectrogram.sizes());
  const int64_t batch = spectrogram.size(0);
  TORCH_CHECK(emotion.sizes() == torch::IntArrayRef({batch, o.emotion_dim}), "emotion must be [", batch, ", ",
              o.emotion_dim, "], got ", emotion.sizes());
  TORCH_CHECK(midi_features.sizes() == torch::IntArrayRef({batch, o.midi_features}), "midi_features must be [", batch,
              ", ", o.midi_features, "], got ", midi_features.sizes());
  const bool training = is_training();

  at::Tensor h = torch::gelu(conv1->forward(spectrogram));
  h = torch::gelu(conv2->forward(h));
  h = conv3->forward(h).transpose(1, 2);  // [B, F', D]
  const int64_t frames = h.size(1);
  // Frame time in [-1, 1] (0 for a single frame), so points can place energy in time.
  const at::Tensor t = torch::arange(frames, h.options()) * (2.0 / static_cast<double>(std::max<int64_t>(frames - 1, 1))) -
                       (frames > 1 ? 1.0 : 0.0);
  // In the weights' dtype (fp32) under bf16 autocast: LibTorch 1.13's CPU
  // autocast leaves layer_norm uncast, and it refuses a bf16 input with fp32 weights.
  const at::Tensor memory = (h + time_embedding->forward(t.unsqueeze(-1))).to(point_queries.scalar_type());

  const at::Tensor context = context2->forward(torch::gelu(
      context1->forward(torch::cat({h.mean(1), emotion.to(h.scalar_type()), midi_features.to(h.scalar_type())}, 1))));
  at::Tensor x = point_queries.unsqueeze(0) + context.unsqueeze(1);  // [B, P, D]
  const int64_t heads = o.n_heads, hd = o.d_model / heads, points = o.num_points;
  for (const auto& module : *decoder) {
    auto* block = module->as<PointDecoderBlockImpl>();
    const at::Tensor q = block->cross->q->forward(block->query_norm->forward(x)).view({batch, points, heads, hd}).permute({0, 2, 1, 3});
    const at::Tensor kv = block->cross->kv->forward(block->memory_norm->forward(memory))
                              .view({batch, frames, 2, heads, hd})
                              .permute({2, 0, 3, 1, 4});
    x = x + torch::dropout(block->cross->out->forward(merge_heads(attend(q, kv[0], kv[1], {}, o.dropout, training))),
                           o.dropout, training);
    x = x + torch::dropout(block->mlp->fc2->forward(torch::gelu(block->mlp->fc1->forward(block->mlp_norm->forward(x)))),
                           o.dropout, training);
  }
  const at::Tensor raw = head->forward(out_norm->forward(x));  // [B, P, 10]
  return {torch::tanh(raw.narrow(2, 0, 3)), torch::sigmoid(raw.narrow(2, 3, 4)), torch::sigmoid(raw.narrow(2, 7, 3))};
}

// ONNX emission: mirrors the forward above (see the tests in tests/models).

using onnx::DType;
using onnx::Value;
using namespace onnx_emit;

namespace {

onnx::AttentionOptions scaled(int64_t head_dim) {
  onnx::AttentionOptions o;
  o.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  return o;
}

Value conv1d(onnx::ModelBuilder& b, const Value& x, const torch::nn::Conv1d& conv, int64_t stride,
             const std::string& name) {
  onnx::ConvOptions options;
  options.stride = {stride};
  options.padding = {SpectocloudImpl::kPadding};
  return b.conv(x, onnx::to_tensor_data(conv->weight), onnx::to_tensor_data(conv->bias), options, name);
}

}  // namespace

void emit_spectocloud(onnx::ModelBuilder& b, SpectocloudImpl& m) {
  torch::NoGradGuard no_grad;
  const SpectocloudOptions& o = m.options();
  const int64_t heads = o.n_heads, hd = o.d_model / heads;
  b.set_metadata(onnx::meta::kModelFamily, "spectocloud");
  b.set_metadata(onnx::meta::kProfile, "full");
  const Value spec = b.input("spectrogram", DType::kFloat32, {"batch", o.n_mels, "frames"},
                             "log-mel spectrogram, standardised per clip");
  const Value emotion = b.input("emotion", DType::kFloat32, {"batch", o.emotion_dim});
  const Value midi = b.input("midi_features", DType::kFloat32, {"batch", o.midi_features});

  const auto& strides = SpectocloudImpl::kStrides;
  Value h = b.gelu(conv1d(b, spec, m.conv1, strides[0], "conv1"));
  h = b.gelu(conv1d(b, h, m.conv2, strides[1], "conv2"));
  h = b.transpose(conv1d(b, h, m.conv3, strides[2], "conv3"), {0, 2, 1});  // [B, F', D]
  // Frame time in [-1, 1]: range(F) · 2 / max(F − 1, 1) − min(F − 1, 1).
  const Value frames = dim_scalar(b, h, 1);
  const Value last = b.sub(frames, b.scalar_int64(1));
  const Value denom = b.cast(b.node("Max", {last, b.scalar_int64(1)}), DType::kFloat32);
  const Value shift = b.cast(b.node("Min", {last, b.scalar_int64(1)}), DType::kFloat32);
  const Value t = b.sub(b.mul(position_range(b, b.scalar_int64(0), frames), b.div(b.scalar_float32(2.0f), denom)), shift);
  const Value memory = b.add(h, linear(b, b.unsqueeze(t, {-1}), m.time_embedding, "time_embedding"));

  const Value pooled = b.reduce_mean(h, {1}, false);
  const Value context = linear(b, b.gelu(linear(b, b.concat({pooled, emotion, midi}, 1), m.context1, "context1")),
                               m.context2, "context2");
  Value x = b.add(b.unsqueeze(b.initializer("point_queries", onnx::to_tensor_data(m.point_queries)), {0}),
                  b.unsqueeze(context, {1}));
  for (size_t l = 0; l < m.decoder->size(); ++l) {
    auto* block = m.decoder[l]->as<PointDecoderBlockImpl>();
    auto scope = b.scope("decoder." + std::to_string(l));
    const Value qn = layer_norm(b, x, block->query_norm, "query_norm");
    const Value mn = layer_norm(b, memory, block->memory_norm, "memory_norm");
    {
      auto cross_scope = b.scope("cross");
      const Value q = b.split_heads(linear(b, qn, block->cross->q, "q"), heads, hd);
      const Value kv = b.transpose(b.reshape(linear(b, mn, block->cross->kv, "kv"), {0, 0, 2, heads, hd}),
                                   {2, 0, 3, 1, 4}, "split_kv");
      const Value ctx = b.attention(q, b.gather(kv, b.scalar_int64(0), 0, "k"), b.gather(kv, b.scalar_int64(1), 0, "v"),
                                    scaled(hd));
      x = b.add(x, attention_output(b, ctx, block->cross->out, heads, hd));
    }
    x = b.add(x, mlp(b, layer_norm(b, x, block->mlp_norm, "mlp_norm"), *block->mlp, "mlp"));
  }
  const Value raw = linear(b, layer_norm(b, x, m.out_norm, "out_norm"), m.head, "head");
  b.output(b.tanh(b.slice(raw, {0}, {3}, {2})), "positions", DType::kFloat32, {"batch", o.num_points, 3},
           "x, y, z in [-1, 1]");
  b.output(b.sigmoid(b.slice(raw, {3}, {7}, {2})), "colors", DType::kFloat32, {"batch", o.num_points, 4},
           "RGBA in [0, 1]");
  b.output(b.sigmoid(b.slice(raw, {7}, {10}, {2})), "properties", DType::kFloat32, {"batch", o.num_points, 3},
           "size, glow, depth in [0, 1]");
}

}  // namespace kmidi::models
