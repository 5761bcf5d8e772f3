// The generator's ONNX graphs compute what the LibTorch model computes
// (onnxruntime against LibTorch), at several batch and sequence sizes, and the
// incremental graph reproduces the full graph's logits token by token.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "onnx/check/OrtRunner.h"
#include "onnx/check/Parity.h"
#include "onnx/Metadata.h"
#include "onnx/ModelBuilder.h"
#include "onnx/ModelCheck.h"
#include "core/Files.h"
#include "models/MidiGeneratorOnnx.h"
#include "tests/support/OnnxProtoView.h"
#include "tests/support/TestSupport.h"

namespace kmidi::models {
namespace {

MidiGeneratorOptions small(Conditioning c, bool tied) {
  MidiGeneratorOptions o;
  o.vocab_size = 61;
  o.d_model = 32;
  o.n_layers = 2;
  o.n_heads = 4;
  o.d_ff = 48;
  o.dropout = 0.1;  // must not appear in the exported graph
  o.conditioning = c;
  o.condition_tokens = 2;
  o.tie_embeddings = tied;
  return o;
}

std::string export_graph(MidiGenerator& model, bool incremental, const std::string& path) {
  onnx::ModelBuilder b;
  b.set_metadata(onnx::meta::kFormatVersion, onnx::meta::kCurrentFormatVersion);
  emit_midi_generator(b, *model, incremental);
  const std::string bytes = b.build();
  EXPECT_EQ(test::unused_initializers(bytes), std::vector<std::string>{}) << path;
  onnx::check_model(bytes, path);
  files::write_atomic(path, bytes);
  return path;
}

class GeneratorOnnx : public ::testing::TestWithParam<std::tuple<Conditioning, bool>> {};

TEST_P(GeneratorOnnx, FullGraphMatchesLibTorch) {
  torch::manual_seed(5);
  MidiGenerator model(small(std::get<0>(GetParam()), std::get<1>(GetParam())));
  model->eval();
  const std::string dir = test::scratch_dir("generator_full");
  const std::string path = export_graph(model, false, dir + "/generator.onnx");
  const onnx::OnnxModelInfo info = onnx::read_model_info(path);
  ASSERT_EQ(info.outputs.size(), 1u);
  EXPECT_EQ(info.outputs[0].name, "logits");
  EXPECT_EQ(info.metadata_value("kmidi.profile").value_or(""), "full");
  torch::NoGradGuard no_grad;
  for (auto [batch, seq] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 17}, {3, 9}, {2, 64}}) {
    data::NamedTensors inputs;
    inputs.set("input_ids", torch::randint(0, 61, {batch, seq}, torch::kLong));
    inputs.set("emotion", torch::rand({batch, 64}) * 2 - 1);
    data::NamedTensors reference;
    reference.set("logits", model->forward(inputs.at("input_ids"), inputs.at("emotion")));
    onnx::onnxruntime_parity(path, inputs, reference).require_passed("batch " + std::to_string(batch) + " seq " +
                                                                     std::to_string(seq));
  }
}

TEST_P(GeneratorOnnx, IncrementalGraphReproducesFullLogitsTokenByToken) {
  torch::manual_seed(6);
  const auto options = small(std::get<0>(GetParam()), std::get<1>(GetParam()));
  MidiGenerator model(options);
  model->eval();
  const std::string dir = test::scratch_dir("generator_incremental");
  const std::string path = export_graph(model, true, dir + "/generator_incremental.onnx");
  const onnx::OnnxModelInfo info = onnx::read_model_info(path);
  ASSERT_EQ(info.inputs.size(), 2u + 2u * static_cast<size_t>(options.n_layers));
  EXPECT_EQ(info.outputs[1].name, "present_key_0");
  torch::NoGradGuard no_grad;
  const int64_t batch = 2, seq = 12;
  const auto ids = torch::randint(0, 61, {batch, seq}, torch::kLong);
  const auto emotion = torch::rand({batch, 64}) * 2 - 1;
  const auto full = model->forward(ids, emotion);

  // Prompt of 4 tokens from an empty cache, then one token per step.
  std::vector<at::Tensor> past(2 * static_cast<size_t>(options.n_layers),
                               torch::zeros({batch, options.n_heads, 0, options.head_dim()}));
  std::vector<at::Tensor> stitched;
  for (int64_t start = 0; start < seq;) {
    const int64_t len = start == 0 ? 4 : 1;
    data::NamedTensors inputs;
    inputs.set("input_ids", ids.narrow(1, start, len).contiguous());
    inputs.set("emotion", emotion);
    for (int64_t l = 0; l < options.n_layers; ++l) {
      inputs.set(past_key_name(l), past[2 * l]);
      inputs.set(past_value_name(l), past[2 * l + 1]);
    }
    const data::NamedTensors out = onnx::run_onnxruntime(path, inputs);
    stitched.push_back(out.at("logits"));
    for (int64_t l = 0; l < options.n_layers; ++l) {
      past[2 * l] = out.at(present_key_name(l));
      past[2 * l + 1] = out.at(present_value_name(l));
    }
    start += len;
  }
  EXPECT_EQ(past[0].size(2), seq);
  data::NamedTensors reference, candidate;
  reference.set("logits", full);
  candidate.set("logits", torch::cat(stitched, 1));
  onnx::compare_outputs(reference, candidate).require_passed("incremental vs full");

  // The cache tensors equal LibTorch's own cache.
  KVCache cache;
  model->forward_cached(ids, emotion, cache);
  EXPECT_LT((cache.keys[1] - past[2]).abs().max().item<double>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, GeneratorOnnx,
    ::testing::Combine(::testing::Values(Conditioning::kPrefix, Conditioning::kCrossAttention), ::testing::Bool()),
    [](const auto& info) {
      return to_string(std::get<0>(info.param)) + (std::get<1>(info.param) ? "_tied" : "_untied");
    });

}  // namespace
}  // namespace kmidi::models
