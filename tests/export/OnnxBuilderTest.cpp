// The builder writes what it promises: read back through the ONNX protobuf
// itself (an independent view), and through read_model_info.

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <string>
#include <unordered_set>

#include "core/Errors.h"
#include "onnx/Metadata.h"
#include "onnx/ModelBuilder.h"
#include "onnx/ModelCheck.h"

namespace kmidi::onnx {
namespace {

::onnx::ModelProto parse(const std::string& bytes) {
  ::onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

const ::onnx::TensorProto* find_initializer(const ::onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

const ::onnx::NodeProto* find_node(const ::onnx::ModelProto& m, const std::string& name) {
  for (const auto& n : m.graph().node()) {
    if (n.name() == name) return &n;
  }
  return nullptr;
}

void required_metadata(ModelBuilder& b, const std::string& family = "test") {
  b.set_metadata(meta::kFormatVersion, meta::kCurrentFormatVersion);
  b.set_metadata(meta::kModelFamily, family);
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

// Linear(4 -> 3) with weight w[o][i] = o*10 + i, bias 0.5*o; GELU; LayerNorm(3).
std::string small_model() {
  ModelBuilder b(ModelOptions{"small", "a test model", "kmidi-test", "9.9", 3});
  required_metadata(b);
  b.set_metadata(meta::kTrainStep, "1200");
  b.set_metadata("kmidi.special_token.pad", "0");
  Value x = b.input("features", DType::kFloat32, {"batch", 4}, "test features");
  std::vector<float> w;
  for (int o = 0; o < 3; ++o) {
    for (int i = 0; i < 4; ++i) w.push_back(static_cast<float>(o * 10 + i));
  }
  {
    auto s = b.scope("encoder");
    x = b.linear(x, TensorData::float32({3, 4}, w), TensorData::float32({3}, {0.0f, 0.5f, 1.0f}), "fc1");
    x = b.gelu(x);
    x = b.layer_norm(x, TensorData::float32({3}, {1, 2, 3}), TensorData::float32({3}, {0, 0, 1}), 1e-5f, "norm");
  }
  b.output(x, "embedding", DType::kFloat32, {"batch", 3}, "normalised embedding");
  return b.build();
}

TEST(OnnxTypes, NamesRoundTripAndDimsValidate) {
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kFloat64, DType::kInt64, DType::kInt32, DType::kInt16,
                  DType::kInt8, DType::kUInt8, DType::kBool}) {
    EXPECT_EQ(dtype_from_name(dtype_name(d)), d);
  }
  EXPECT_EQ(dtype_size(DType::kInt64), 8u);
  EXPECT_NE(error_of([] { dtype_from_name("float"); }).find("unknown element type 'float'"), std::string::npos);
  EXPECT_NE(error_of([] { Dim("2batch"); }).find("symbolic name must match"), std::string::npos);
  EXPECT_NE(error_of([] { Dim(int64_t{-3}); }).find("expected a size >= 0, got -3"), std::string::npos);
  EXPECT_EQ(shape_to_string(Shape{"batch", 0, Dim()}), "[batch, 0, ?]");
  EXPECT_NE(error_of([] { TensorData::float32({2, 3}, {1, 2, 3}); }).find("needs 24 bytes, got 12"),
            std::string::npos);
}

TEST(OnnxBuilder, WritesVersionsMetadataAndInterface) {
  const ::onnx::ModelProto m = parse(small_model());
  EXPECT_EQ(m.ir_version(), 8);
  ASSERT_EQ(m.opset_import_size(), 1);
  EXPECT_EQ(m.opset_import(0).domain(), "");
  EXPECT_EQ(m.opset_import(0).version(), 17);
  EXPECT_EQ(m.producer_name(), "kmidi-test");
  EXPECT_EQ(m.producer_version(), "9.9");
  EXPECT_EQ(m.model_version(), 3);
  EXPECT_EQ(m.doc_string(), "a test model");
  EXPECT_EQ(m.graph().name(), "small");

  ASSERT_EQ(m.metadata_props_size(), 4);
  EXPECT_EQ(m.metadata_props(0).key(), "kmidi.format_version");
  EXPECT_EQ(m.metadata_props(0).value(), "1");
  EXPECT_EQ(m.metadata_props(1).key(), "kmidi.model_family");
  EXPECT_EQ(m.metadata_props(1).value(), "test");
  EXPECT_EQ(m.metadata_props(2).key(), "kmidi.train_step");
  EXPECT_EQ(m.metadata_props(2).value(), "1200");
  EXPECT_EQ(m.metadata_props(3).key(), "kmidi.special_token.pad");

  ASSERT_EQ(m.graph().input_size(), 1);
  const auto& in = m.graph().input(0);
  EXPECT_EQ(in.name(), "features");
  EXPECT_EQ(in.doc_string(), "test features");
  EXPECT_EQ(in.type().tensor_type().elem_type(), ::onnx::TensorProto::FLOAT);
  ASSERT_EQ(in.type().tensor_type().shape().dim_size(), 2);
  EXPECT_EQ(in.type().tensor_type().shape().dim(0).dim_param(), "batch");
  EXPECT_EQ(in.type().tensor_type().shape().dim(1).dim_value(), 4);

  ASSERT_EQ(m.graph().output_size(), 1);
  EXPECT_EQ(m.graph().output(0).name(), "embedding");
  EXPECT_EQ(m.graph().output(0).type().tensor_type().shape().dim(0).dim_param(), "batch");
  // The output is the LayerNormalization's own output, not an Identity copy.
  const ::onnx::NodeProto* ln = find_node(m, "encoder.norm/LayerNormalization");
  ASSERT_NE(ln, nullptr);
  EXPECT_EQ(ln->output(0), "embedding");
  for (const auto& n : m.graph().node()) EXPECT_NE(n.op_type(), "Identity");
}

TEST(OnnxBuilder, LinearStoresTheTransposedTorchWeight) {
  const ::onnx::ModelProto m = parse(small_model());
  const ::onnx::TensorProto* w = find_initializer(m, "encoder.fc1.weight");
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(w->dims_size(), 2);
  EXPECT_EQ(w->dims(0), 4);  // [in, out]
  EXPECT_EQ(w->dims(1), 3);
  EXPECT_EQ(w->data_type(), ::onnx::TensorProto::FLOAT);
  ASSERT_EQ(w->raw_data().size(), 12 * sizeof(float));
  std::vector<float> values(12);
  std::memcpy(values.data(), w->raw_data().data(), w->raw_data().size());
  for (int i = 0; i < 4; ++i) {
    for (int o = 0; o < 3; ++o) EXPECT_EQ(values[i * 3 + o], static_cast<float>(o * 10 + i)) << i << "," << o;
  }
  EXPECT_NE(find_initializer(m, "encoder.fc1.bias"), nullptr);
  EXPECT_NE(find_initializer(m, "encoder.norm.weight"), nullptr);
  EXPECT_NE(find_initializer(m, "encoder.norm.bias"), nullptr);

  const ::onnx::NodeProto* mm = find_node(m, "encoder.fc1/MatMul");
  ASSERT_NE(mm, nullptr);
  EXPECT_EQ(mm->input(0), "features");
  EXPECT_EQ(mm->input(1), "encoder.fc1.weight");
  const ::onnx::NodeProto* add = find_node(m, "encoder.fc1/Add");
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->input(0), mm->output(0));
  EXPECT_NE(find_node(m, "encoder.gelu/Erf"), nullptr);
  const ::onnx::NodeProto* ln = find_node(m, "encoder.norm/LayerNormalization");
  ASSERT_NE(ln, nullptr);
  ASSERT_EQ(ln->attribute_size(), 2);
  EXPECT_EQ(ln->attribute(0).name(), "axis");
  EXPECT_EQ(ln->attribute(0).i(), -1);
  EXPECT_EQ(ln->attribute(1).name(), "epsilon");
  EXPECT_FLOAT_EQ(ln->attribute(1).f(), 1e-5f);
}

TEST(OnnxBuilder, PassesTheCheckerAndReadsBack) {
  const std::string bytes = small_model();
  EXPECT_NO_THROW(check_model(bytes, "small model"));
  const OnnxModelInfo info = parse_model_info(bytes);
  EXPECT_EQ(info.ir_version, 8);
  EXPECT_EQ(info.opset, 17);
  EXPECT_EQ(info.producer_name, "kmidi-test");
  EXPECT_EQ(info.graph_name, "small");
  ASSERT_EQ(info.inputs.size(), 1u);
  EXPECT_EQ(info.inputs[0].name, "features");
  EXPECT_EQ(info.inputs[0].dtype, DType::kFloat32);
  EXPECT_EQ(info.inputs[0].shape, (Shape{"batch", 4}));
  EXPECT_EQ(info.output_names(), std::vector<std::string>{"embedding"});
  EXPECT_EQ(info.outputs[0].shape, (Shape{"batch", 3}));
  EXPECT_EQ(info.outputs[0].doc, "normalised embedding");
  EXPECT_EQ(info.metadata_value("kmidi.train_step"), std::optional<std::string>("1200"));
  EXPECT_FALSE(info.metadata_value("kmidi.git_commit").has_value());
  EXPECT_EQ(info.initializer_count, 4u + 3u);  // 4 weights + gelu's 3 scalars (1/sqrt2, 0.5, 1)
  EXPECT_EQ(info.parameter_count, 12 + 3 + 3 + 3 + 3);
}

TEST(OnnxBuilder, NamesAreHierarchicalAndUnique) {
  ModelBuilder b;
  required_metadata(b);
  Value x = b.input("x", DType::kFloat32, {"batch", 2});
  Value y;
  {
    auto decoder = b.scope("decoder");
    auto layer = b.scope("layers.3");
    auto attn = b.scope("attn");
    EXPECT_EQ(b.scope_path(), "decoder.layers.3.attn");
    y = b.matmul(x, b.constant(TensorData::float32({2, 2}, {1, 0, 0, 1})), "q");
    y = b.matmul(y, b.constant(TensorData::float32({2, 2}, {1, 0, 0, 1})), "q");
    y = b.relu(y);
  }
  EXPECT_EQ(b.scope_path(), "");
  y = b.relu(y);
  b.output(y, "y", DType::kFloat32, {"batch", 2});
  const ::onnx::ModelProto m = parse(b.build());
  ASSERT_EQ(m.graph().node_size(), 4);
  EXPECT_EQ(m.graph().node(0).name(), "decoder.layers.3.attn/MatMul_q");
  EXPECT_EQ(m.graph().node(1).name(), "decoder.layers.3.attn/MatMul_q_1");
  EXPECT_EQ(m.graph().node(2).name(), "decoder.layers.3.attn/Relu");
  EXPECT_EQ(m.graph().node(3).name(), "Relu");
  // The identical identity matrices are one shared constant.
  EXPECT_EQ(m.graph().node(0).input(1), m.graph().node(1).input(1));
  EXPECT_EQ(m.graph().initializer_size(), 1);
  EXPECT_NO_THROW(check_model(b.build()));
}

TEST(OnnxBuilder, OutputOfAnInputOrTwiceTheSameValueAddsIdentity) {
  ModelBuilder b;
  required_metadata(b);
  Value x = b.input("x", DType::kFloat32, {"batch", 2});
  Value r = b.relu(x);
  b.output(r, "first", DType::kFloat32, {"batch", 2});
  b.output(r, "second", DType::kFloat32, {"batch", 2});  // already an output: Identity
  b.output(x, "passthrough", DType::kFloat32, {"batch", 2});  // a graph input: Identity
  // The old handle of a renamed value still works in later nodes.
  b.output(b.sigmoid(r), "third", DType::kFloat32, {"batch", 2});
  const std::string bytes = b.build();
  EXPECT_NO_THROW(check_model(bytes));
  const ::onnx::ModelProto m = parse(bytes);
  ASSERT_EQ(m.graph().output_size(), 4);
  EXPECT_EQ(m.graph().output(0).name(), "first");
  EXPECT_EQ(m.graph().output(1).name(), "second");
  EXPECT_EQ(m.graph().output(2).name(), "passthrough");
  EXPECT_EQ(m.graph().output(3).name(), "third");
  int identities = 0;
  for (const auto& n : m.graph().node()) identities += n.op_type() == "Identity";
  EXPECT_EQ(identities, 2);
  EXPECT_EQ(find_node(m, "Sigmoid")->input(0), "first");
}

TEST(OnnxBuilder, RejectsMisuseWithClearMessages) {
  ModelBuilder b;
  Value x = b.input("x", DType::kFloat32, {"batch", 2});
  EXPECT_NE(error_of([&] { b.input("x", DType::kFloat32, {1}); }).find("the name 'x' is taken"), std::string::npos);
  EXPECT_NE(error_of([&] { b.relu(Value("nowhere"), "act"); })
                .find("node 'Relu_act' uses 'nowhere', which is no graph input"),
            std::string::npos);
  EXPECT_NE(error_of([&] { b.set_metadata("format_version", "1"); }).find("'kmidi.' namespace"), std::string::npos);
  EXPECT_NE(error_of([&] { b.set_metadata("kmidi.Bad", "1"); }).find("got 'kmidi.Bad'"), std::string::npos);
  {
    auto s = b.scope("enc");
    b.initializer("w", TensorData::scalar_float32(1));
    EXPECT_NE(error_of([&] { b.initializer("w", TensorData::scalar_float32(2)); }).find("the name 'enc.w' is taken"),
              std::string::npos);
    EXPECT_NE(error_of([&] { b.linear(x, TensorData::float32({2}, {1, 2}), "fc"); }).find("expected weight [out, in]"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                b.linear(x, TensorData::float32({1, 2}, {1, 2}), TensorData::float32({2}, {1, 2}), "fc2");
              }).find("expected bias [out]"),
              std::string::npos);
  }
  EXPECT_NE(error_of([&] { b.build(); }).find("the graph has no output"), std::string::npos);
  b.output(b.relu(x), "y", DType::kFloat32, {"batch", 2});
  EXPECT_NE(error_of([&] { b.build(); }).find("metadata 'kmidi.format_version' is required"), std::string::npos);
  b.set_metadata(meta::kFormatVersion, "1");
  EXPECT_NE(error_of([&] { b.build(); }).find("metadata 'kmidi.model_family' is required"), std::string::npos);
  EXPECT_NE(error_of([&] { b.output(x, "y", DType::kFloat32, {"batch", 2}); }).find("'y' is taken"),
            std::string::npos);
  EXPECT_NE(error_of([&] { b.attention(x, x, x, AttentionOptions{}); }).find("options.scale must be > 0"),
            std::string::npos);
}

TEST(OnnxBuilder, AttentionBlockWithSymbolicAxesPassesShapeInference) {
  ModelBuilder b;
  required_metadata(b);
  const int64_t heads = 2, head_dim = 3, dim = heads * head_dim;
  std::vector<float> w(dim * dim, 0.1f);
  Value x = b.input("hidden", DType::kFloat32, {"batch", "sequence", dim});
  {
    auto s = b.scope("attn");
    const Value q = b.split_heads(b.linear(x, TensorData::float32({dim, dim}, w), "q_proj"), heads, head_dim, "q");
    const Value k = b.split_heads(b.linear(x, TensorData::float32({dim, dim}, w), "k_proj"), heads, head_dim, "k");
    const Value v = b.split_heads(b.linear(x, TensorData::float32({dim, dim}, w), "v_proj"), heads, head_dim, "v");
    AttentionOptions options;
    options.scale = 1.0f / std::sqrt(3.0f);
    options.causal = true;
    x = b.merge_heads(b.attention(q, k, v, options), heads, head_dim);
  }
  b.output(x, "context", DType::kFloat32, {"batch", "sequence", dim});
  const std::string bytes = b.build();
  EXPECT_NO_THROW(check_model(bytes));
  const ::onnx::ModelProto m = parse(bytes);
  EXPECT_NE(find_node(m, "attn.attention/Trilu_causal"), nullptr);
  EXPECT_NE(find_node(m, "attn.attention/Softmax"), nullptr);
  EXPECT_NE(find_initializer(m, "attn.q_proj.weight"), nullptr);
}

// Non-causal attention without a mask (the groove and spectocloud decoders)
// used to leave its mask fill constant unread: onnxruntime warned about it on
// every load.
TEST(OnnxBuilder, AttentionWithoutMaskLeavesNoUnusedInitializer) {
  ModelBuilder b;
  required_metadata(b);
  const Value x = b.input("x", DType::kFloat32, {"batch", 2, "sequence", 3});
  AttentionOptions options;
  options.scale = 0.5f;
  b.output(b.attention(x, x, x, options), "context", DType::kFloat32, {"batch", 2, "sequence", 3});
  const ::onnx::ModelProto m = parse(b.build());
  std::unordered_set<std::string> read;
  for (const auto& n : m.graph().node()) read.insert(n.input().begin(), n.input().end());
  for (const auto& t : m.graph().initializer()) EXPECT_TRUE(read.count(t.name())) << t.name() << " is never read";
  EXPECT_EQ(m.graph().initializer_size(), 1);  // the scale only
}

TEST(OnnxBuilder, BuildRefusesAnInitializerNothingReads) {
  ModelBuilder b;
  required_metadata(b);
  const Value x = b.input("x", DType::kFloat32, {"batch", 2});
  {
    auto s = b.scope("head");
    b.initializer("forgotten", TensorData::float32({2}, {1, 2}));
  }
  b.scalar_float32(3.0f);  // an anonymous constant, never read
  b.output(b.relu(x), "y", DType::kFloat32, {"batch", 2});
  EXPECT_NE(error_of([&] { b.build(); }).find("initializer 'head.forgotten' is not used by any node or graph output"),
            std::string::npos);
}

}  // namespace
}  // namespace kmidi::onnx
