// Graphs built by hand with the builder compute, in onnxruntime, what LibTorch
// computes with torch::nn::functional on the same weights and inputs, at
// several batch and sequence sizes: the symbolic axes really are dynamic.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <unistd.h>

#include "core/Errors.h"
#include "onnx/check/OrtRunner.h"
#include "onnx/check/Parity.h"
#include "onnx/torch/TorchTensors.h"
#include "onnx/CheckedWrite.h"
#include "onnx/Metadata.h"
#include "onnx/ModelBuilder.h"
#include "onnx/ModelCheck.h"
#include "tests/support/TestSupport.h"

namespace kmidi::onnx {
namespace {

namespace F = torch::nn::functional;
namespace fs = std::filesystem;

constexpr double kTol = 1e-5;

fs::path scratch_file(const std::string& name) { return fs::path(test::scratch_dir("ort_parity_" + name)) / name; }

void required_metadata(ModelBuilder& b, const std::string& family) {
  b.set_metadata(meta::kFormatVersion, meta::kCurrentFormatVersion);
  b.set_metadata(meta::kModelFamily, family);
}

/// Checks and writes `bytes`, then runs it at each input set against `reference`.
template <class Reference>
void expect_parity(const std::string& file, const std::string& bytes, const std::vector<data::NamedTensors>& input_sets,
                   Reference reference) {
  const std::string path = scratch_file(file).string();
  write_checked_model(path, bytes);
  for (const auto& inputs : input_sets) {
    const data::NamedTensors expected = reference(inputs);
    const ParityReport report = onnxruntime_parity(path, inputs, expected, Tolerance{kTol, kTol});
    EXPECT_TRUE(report.passed()) << report.summary();
  }
}

data::NamedTensors named(const std::string& name, const torch::Tensor& t) {
  data::NamedTensors n;
  n.set(name, t);
  return n;
}

TEST(OrtParity, LinearGeluLayerNorm) {
  torch::manual_seed(7);
  const int64_t in = 12, hidden = 16;
  const torch::Tensor w = torch::randn({hidden, in}), bias = torch::randn({hidden});
  const torch::Tensor ln_w = torch::rand({hidden}) + 0.5, ln_b = torch::randn({hidden});

  ModelBuilder b;
  required_metadata(b, "test");
  Value x = b.input("x", DType::kFloat32, {"batch", in});
  x = b.linear(x, to_tensor_data(w), to_tensor_data(bias), "fc");
  x = b.gelu(x);
  x = b.layer_norm(x, to_tensor_data(ln_w), to_tensor_data(ln_b), 1e-5f, "norm");
  b.output(x, "y", DType::kFloat32, {"batch", hidden});

  std::vector<data::NamedTensors> sets;
  for (int64_t batch : {1, 3, 8}) sets.push_back(named("x", torch::randn({batch, in}) * 2));
  expect_parity("linear_gelu_ln.onnx", b.build(), sets, [&](const data::NamedTensors& inputs) {
    torch::Tensor y = F::linear(inputs.at("x"), w, bias);
    y = F::gelu(y);
    y = F::layer_norm(y, F::LayerNormFuncOptions({hidden}).weight(ln_w).bias(ln_b).eps(1e-5));
    return named("y", y);
  });
}

TEST(OrtParity, ActivationsAndGelu) {
  torch::manual_seed(8);
  ModelBuilder b;
  required_metadata(b, "test");
  const Value x = b.input("x", DType::kFloat32, {"batch", "sequence", 5});
  b.output(b.gelu(x), "gelu", DType::kFloat32, {"batch", "sequence", 5});
  b.output(b.gelu(x, GeluApproximation::kTanh), "gelu_tanh", DType::kFloat32, {"batch", "sequence", 5});
  b.output(b.relu(x), "relu", DType::kFloat32, {"batch", "sequence", 5});
  b.output(b.sigmoid(x), "sigmoid", DType::kFloat32, {"batch", "sequence", 5});
  b.output(b.tanh(x), "tanh", DType::kFloat32, {"batch", "sequence", 5});
  b.output(b.softmax(x, 1), "softmax", DType::kFloat32, {"batch", "sequence", 5});
  b.output(b.reduce_mean(x, {1}, false), "mean", DType::kFloat32, {"batch", 5});
  b.output(b.sqrt(b.exp(x)), "sqrt_exp", DType::kFloat32, {"batch", "sequence", 5});

  std::vector<data::NamedTensors> sets;
  for (auto [batch, seq] : {std::pair{1, 1}, {2, 7}, {4, 3}}) sets.push_back(named("x", torch::randn({batch, seq, 5}) * 3));
  expect_parity("activations.onnx", b.build(), sets, [](const data::NamedTensors& inputs) {
    const torch::Tensor x = inputs.at("x");
    data::NamedTensors out;
    out.set("gelu", F::gelu(x));
    out.set("gelu_tanh", F::gelu(x, F::GELUFuncOptions().approximate("tanh")));
    out.set("relu", F::relu(x));
    out.set("sigmoid", torch::sigmoid(x));
    out.set("tanh", torch::tanh(x));
    out.set("softmax", F::softmax(x, 1));
    out.set("mean", x.mean({1}));
    out.set("sqrt_exp", torch::sqrt(torch::exp(x)));
    return out;
  });
}

/// torch's multi-head self-attention on [B, T, D] with q/k/v/out projections.
struct AttentionWeights {
  torch::Tensor wq, bq, wk, bk, wv, bv, wo, bo;
};

torch::Tensor torch_heads(const torch::Tensor& x, int64_t heads) {
  return x.view({x.size(0), x.size(1), heads, -1}).transpose(1, 2);
}

/// Attention of the last T positions (queries `x`) over `past_k/past_v` ([B, H, P, d], may be empty) and x.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> torch_attention(const AttentionWeights& w,
                                                                      const torch::Tensor& x, int64_t heads,
                                                                      const torch::Tensor& past_k,
                                                                      const torch::Tensor& past_v) {
  const torch::Tensor q = torch_heads(F::linear(x, w.wq, w.bq), heads);
  const torch::Tensor k = torch::cat({past_k, torch_heads(F::linear(x, w.wk, w.bk), heads)}, 2);
  const torch::Tensor v = torch::cat({past_v, torch_heads(F::linear(x, w.wv, w.bv), heads)}, 2);
  const int64_t t = q.size(2), s = k.size(2), d = q.size(3);
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(d));
  const torch::Tensor future = torch::ones({t, s}, torch::kBool).triu(1 + s - t);
  scores = scores.masked_fill(future, std::numeric_limits<float>::lowest());
  const torch::Tensor context = torch::matmul(F::softmax(scores, -1), v);
  const torch::Tensor merged = context.transpose(1, 2).reshape({x.size(0), t, -1});
  return {F::linear(merged, w.wo, w.bo), k, v};
}

/// The same block with the builder; with past inputs when `incremental`.
std::string attention_graph(const AttentionWeights& w, int64_t heads, int64_t dim, bool incremental) {
  const int64_t head_dim = dim / heads;
  ModelBuilder b;
  required_metadata(b, "test_attention");
  b.set_metadata(meta::kProfile, incremental ? "incremental" : "full");
  Value x = b.input("hidden", DType::kFloat32, {"batch", "sequence", dim});
  Value past_k, past_v;
  if (incremental) {
    past_k = b.input("past_key", DType::kFloat32, {"batch", heads, "past_sequence", head_dim});
    past_v = b.input("past_value", DType::kFloat32, {"batch", heads, "past_sequence", head_dim});
  }
  Value y, k, v;
  {
    auto layer = b.scope("layers.0");
    auto attn = b.scope("attn");
    const Value q = b.split_heads(b.linear(x, to_tensor_data(w.wq), to_tensor_data(w.bq), "q_proj"), heads, head_dim, "q");
    k = b.split_heads(b.linear(x, to_tensor_data(w.wk), to_tensor_data(w.bk), "k_proj"), heads, head_dim, "k");
    v = b.split_heads(b.linear(x, to_tensor_data(w.wv), to_tensor_data(w.bv), "v_proj"), heads, head_dim, "v");
    if (incremental) {
      k = b.concat({past_k, k}, 2, "present_key");
      v = b.concat({past_v, v}, 2, "present_value");
    }
    AttentionOptions options;
    options.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    options.causal = true;
    y = b.merge_heads(b.attention(q, k, v, options), heads, head_dim);
    y = b.linear(y, to_tensor_data(w.wo), to_tensor_data(w.bo), "out_proj");
  }
  b.output(y, "output", DType::kFloat32, {"batch", "sequence", dim});
  if (incremental) {
    b.output(k, "present_key", DType::kFloat32, {"batch", heads, "total_sequence", head_dim});
    b.output(v, "present_value", DType::kFloat32, {"batch", heads, "total_sequence", head_dim});
  }
  return b.build();
}

AttentionWeights random_attention_weights(int64_t dim) {
  AttentionWeights w;
  for (torch::Tensor* t : {&w.wq, &w.wk, &w.wv, &w.wo}) *t = torch::randn({dim, dim}) / std::sqrt(static_cast<double>(dim));
  for (torch::Tensor* t : {&w.bq, &w.bk, &w.bv, &w.bo}) *t = torch::randn({dim}) * 0.1;
  return w;
}

TEST(OrtParity, CausalSelfAttentionAtSeveralBatchAndSequenceSizes) {
  torch::manual_seed(11);
  const int64_t heads = 4, dim = 32;
  const AttentionWeights w = random_attention_weights(dim);
  const std::string bytes = attention_graph(w, heads, dim, false);
  const OnnxModelInfo info = parse_model_info(bytes);
  EXPECT_EQ(info.inputs[0].shape, (Shape{"batch", "sequence", dim}));

  std::vector<data::NamedTensors> sets;
  for (auto [batch, seq] : {std::pair{1, 1}, {2, 5}, {3, 17}}) sets.push_back(named("hidden", torch::randn({batch, seq, dim})));
  expect_parity("attention.onnx", bytes, sets, [&](const data::NamedTensors& inputs) {
    const torch::Tensor x = inputs.at("hidden");
    const torch::Tensor none = torch::zeros({x.size(0), heads, 0, dim / heads});
    return named("output", std::get<0>(torch_attention(w, x, heads, none, none)));
  });
}

TEST(OrtParity, IncrementalAttentionReproducesTheFullSequence) {
  torch::manual_seed(12);
  const int64_t heads = 2, dim = 16, batch = 2, total = 9;
  const AttentionWeights w = random_attention_weights(dim);
  const std::string full_path = scratch_file("attention_full.onnx").string();
  const std::string step_path = scratch_file("attention_step.onnx").string();
  write_checked_model(full_path, attention_graph(w, heads, dim, false));
  write_checked_model(step_path, attention_graph(w, heads, dim, true));

  const torch::Tensor x = torch::randn({batch, total, dim});
  const torch::Tensor full = run_onnxruntime(full_path, named("hidden", x)).at("output");
  // Prompt of 4 positions, then one position at a time, carrying present -> past.
  torch::Tensor past_k = torch::zeros({batch, heads, 0, dim / heads}), past_v = past_k.clone();
  std::vector<torch::Tensor> pieces;
  for (auto [start, len] : {std::pair<int64_t, int64_t>{0, 4}, {4, 1}, {5, 1}, {6, 3}}) {
    data::NamedTensors inputs;
    inputs.set("hidden", x.slice(1, start, start + len));
    inputs.set("past_key", past_k);
    inputs.set("past_value", past_v);
    const data::NamedTensors out = run_onnxruntime(step_path, inputs);
    ASSERT_EQ(out.names(), (std::vector<std::string>{"output", "present_key", "present_value"}));
    // The step graph matches LibTorch on the same past ...
    const auto [ref_out, ref_k, ref_v] = torch_attention(w, inputs.at("hidden"), heads, past_k, past_v);
    data::NamedTensors reference;
    reference.set("output", ref_out);
    reference.set("present_key", ref_k);
    reference.set("present_value", ref_v);
    const ParityReport report = compare_outputs(reference, out, Tolerance{kTol, kTol});
    EXPECT_TRUE(report.passed()) << report.summary();
    pieces.push_back(out.at("output"));
    past_k = out.at("present_key");
    past_v = out.at("present_value");
  }
  // ... and the steps together equal the full-sequence graph.
  const ParityReport report = compare_outputs(named("output", full), named("output", torch::cat(pieces, 1)),
                                              Tolerance{kTol, kTol});
  EXPECT_TRUE(report.passed()) << report.summary();
}

TEST(OrtParity, AttentionWithKeyPaddingMask) {
  // A bidirectional encoder's attention with a key mask [B, S]; the second
  // example has every key masked and must average v rather than give NaN.
  torch::manual_seed(16);
  const int64_t heads = 2, head_dim = 4, dim = heads * head_dim;
  ModelBuilder b;
  required_metadata(b, "test_attention");
  const Value x = b.input("x", DType::kFloat32, {"batch", "sequence", dim});
  const Value mask = b.input("mask", DType::kBool, {"batch", "sequence"});
  const Value q = b.split_heads(x, heads, head_dim, "q");
  AttentionOptions options;
  options.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  options.allowed = b.unsqueeze(mask, {1, 2});  // [B, 1, 1, S]
  b.output(b.merge_heads(b.attention(q, q, q, options), heads, head_dim), "y", DType::kFloat32,
           {"batch", "sequence", dim});

  std::vector<data::NamedTensors> sets;
  for (int64_t seq : {3, 6}) {
    data::NamedTensors in;
    in.set("x", torch::randn({3, seq, dim}));
    torch::Tensor m = torch::ones({3, seq}, torch::kBool);
    m[0].slice(0, seq - 1).fill_(false);  // last key padded
    m[1].fill_(false);                    // everything padded
    in.set("mask", m);
    sets.push_back(in);
  }
  expect_parity("attention_mask.onnx", b.build(), sets, [&](const data::NamedTensors& in) {
    const torch::Tensor qh = torch_heads(in.at("x"), heads);
    torch::Tensor scores = torch::matmul(qh, qh.transpose(-2, -1)) / std::sqrt(static_cast<double>(head_dim));
    scores = scores.masked_fill(in.at("mask").logical_not().view({3, 1, 1, -1}), std::numeric_limits<float>::lowest());
    const torch::Tensor context = torch::matmul(F::softmax(scores, -1), qh);
    EXPECT_FALSE(context.isnan().any().item<bool>());
    return named("y", context.transpose(1, 2).reshape({3, -1, dim}));
  });
}

TEST(OrtParity, ShapeAndIndexingOps) {
  torch::manual_seed(13);
  const torch::Tensor table = torch::randn({10, 6});
  ModelBuilder b;
  required_metadata(b, "test_ops");
  const Value ids = b.input("ids", DType::kInt64, {"batch", "sequence"});
  const Value x = b.input("x", DType::kFloat32, {"batch", "sequence", 6});
  const Value emb = b.embedding(ids, to_tensor_data(table), "embed");             // [B, T, 6]
  const Value sum = b.add(emb, x);
  b.output(b.reshape(sum, {0, -1}), "flat", DType::kFloat32, {"batch", Dim()});   // [B, T*6]
  b.output(b.slice(sum, {1}, {INT64_MAX}, {1}), "from_second", DType::kFloat32, {"batch", Dim(), 6});
  b.output(b.slice(sum, {0}, {6}, {2}, {2}), "even_features", DType::kFloat32, {"batch", "sequence", 3});
  b.output(b.squeeze(b.unsqueeze(b.gather(sum, b.scalar_int64(0), 1), {1}), {1}), "first_step", DType::kFloat32,
           {"batch", 6});
  const Value positive = b.node("Greater", {x, b.scalar_float32(0.0f)});
  b.output(b.where(positive, x, b.scalar_float32(-1.0f)), "clipped", DType::kFloat32, {"batch", "sequence", 6});
  b.output(b.cast(positive, DType::kInt64), "mask", DType::kInt64, {"batch", "sequence", 6});
  const Value row = b.constant(TensorData::float32({6}, {0, 1, 2, 3, 4, 5}));
  b.output(b.expand(row, b.shape_of(x)), "expanded", DType::kFloat32, {"batch", "sequence", 6});
  b.output(b.shape_of(x, 0, 2), "leading_shape", DType::kInt64, {2});
  b.output(b.concat({x, emb}, -1), "both", DType::kFloat32, {"batch", "sequence", 12});
  b.output(b.transpose(x, {2, 0, 1}), "features_first", DType::kFloat32, {6, "batch", "sequence"});

  std::vector<data::NamedTensors> sets;
  for (auto [batch, seq] : {std::pair{1, 2}, {3, 5}}) {
    data::NamedTensors in;
    in.set("ids", torch::randint(0, 10, {batch, seq}, torch::kLong));
    in.set("x", torch::randn({batch, seq, 6}));
    sets.push_back(in);
  }
  expect_parity("ops.onnx", b.build(), sets, [&](const data::NamedTensors& in) {
    const torch::Tensor x = in.at("x");
    const torch::Tensor emb = F::embedding(in.at("ids"), table);
    const torch::Tensor sum = emb + x;
    data::NamedTensors out;
    out.set("flat", sum.reshape({sum.size(0), -1}));
    out.set("from_second", sum.slice(1, 1));
    out.set("even_features", sum.slice(2, 0, 6, 2));
    out.set("first_step", sum.select(1, 0));
    out.set("clipped", torch::where(x > 0, x, torch::full_like(x, -1)));
    out.set("mask", (x > 0).to(torch::kLong));
    out.set("expanded", torch::arange(6, torch::kFloat).expand_as(x));
    out.set("leading_shape", torch::tensor({x.size(0), x.size(1)}, torch::kLong));
    out.set("both", torch::cat({x, emb}, -1));
    out.set("features_first", x.permute({2, 0, 1}));
    return out;
  });
}

TEST(OrtParity, Convolutions) {
  torch::manual_seed(15);
  // Conv1d over frames (a spectrogram [B, 128 bands, frames] in miniature), strided and padded;
  // then a grouped, dilated Conv2d without bias.
  const torch::Tensor w1 = torch::randn({6, 8, 3}) * 0.3, b1 = torch::randn({6});
  const torch::Tensor w2 = torch::randn({4, 3, 3, 2}) * 0.3;  // groups 2: 6 -> 4 channels
  ModelBuilder b;
  required_metadata(b, "test_conv");
  const Value x = b.input("spectrogram", DType::kFloat32, {"batch", 8, "frames"});
  ConvOptions o1;
  o1.stride = {2};
  o1.padding = {1};
  const Value y1 = b.relu(b.conv(x, to_tensor_data(w1), to_tensor_data(b1), o1, "conv1"));
  b.output(y1, "conv1d", DType::kFloat32, {"batch", 6, Dim()});
  ConvOptions o2;
  o2.padding = {2, 1};
  o2.dilation = {2, 1};
  o2.groups = 2;
  b.output(b.conv(b.unsqueeze(y1, {3}), to_tensor_data(w2), o2, "conv2"), "conv2d", DType::kFloat32,
           {"batch", 4, Dim(), Dim()});
  EXPECT_THROW(b.conv(x, to_tensor_data(w1), ConvOptions{{1, 1}, {}, {}, 1}, "bad"), UsageError);

  std::vector<data::NamedTensors> sets;
  for (auto [batch, frames] : {std::pair{1, 5}, {2, 16}}) sets.push_back(named("spectrogram", torch::randn({batch, 8, frames})));
  expect_parity("conv.onnx", b.build(), sets, [&](const data::NamedTensors& in) {
    const torch::Tensor y1 = F::relu(F::conv1d(in.at("spectrogram"), w1, F::Conv1dFuncOptions().bias(b1).stride(2).padding(1)));
    data::NamedTensors out;
    out.set("conv1d", y1);
    out.set("conv2d", F::conv2d(y1.unsqueeze(3), w2, F::Conv2dFuncOptions().padding({2, 1}).dilation({2, 1}).groups(2)));
    return out;
  });
}

TEST(OrtParity, ParityFailureBlocksTheWrite) {
  torch::manual_seed(14);
  const torch::Tensor w = torch::randn({3, 3}), bias = torch::randn({3});
  ModelBuilder b;
  required_metadata(b, "test");
  const Value x = b.input("x", DType::kFloat32, {"batch", 3});
  b.output(b.linear(x, to_tensor_data(w), to_tensor_data(bias), "fc"), "y", DType::kFloat32, {"batch", 3});
  const std::string path = scratch_file("blocked.onnx").string();
  std::filesystem::remove(path);
  const data::NamedTensors inputs = named("x", torch::randn({2, 3}));
  // A reference from a model that drifted from the exporter: bias doubled.
  const data::NamedTensors drifted = named("y", F::linear(inputs.at("x"), w, bias * 2));
  try {
    write_checked_model(path, b.build(), {[&](const std::string& candidate) {
                          onnxruntime_parity(candidate, inputs, drifted).require_passed("test export");
                        }});
    FAIL();
  } catch (const CheckFailed& e) {
    EXPECT_NE(std::string(e.what()).find("test export: parity FAILED: y:"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace kmidi::onnx
