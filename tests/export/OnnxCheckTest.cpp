// check_model refuses broken graphs with the reason and the node, and
// write_checked_model never leaves a bad or half file at the target.

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/Errors.h"
#include "core/Files.h"
#include "onnx/CheckedWrite.h"
#include "onnx/Metadata.h"
#include "onnx/ModelBuilder.h"
#include "onnx/ModelCheck.h"
#include "tests/support/TestSupport.h"

namespace kmidi::onnx {
namespace {

namespace fs = std::filesystem;

void required_metadata(ModelBuilder& b) {
  b.set_metadata(meta::kFormatVersion, meta::kCurrentFormatVersion);
  b.set_metadata(meta::kModelFamily, "test");
}

/// relu(x) for x [batch, 4], declared output [batch, `declared_width`].
std::string relu_model(int64_t declared_width = 4, const std::string& family = "test") {
  ModelBuilder b;
  b.set_metadata(meta::kFormatVersion, meta::kCurrentFormatVersion);
  b.set_metadata(meta::kModelFamily, family);
  const Value x = b.input("x", DType::kFloat32, {"batch", 4});
  b.output(b.relu(x, "act"), "y", DType::kFloat32, {"batch", declared_width});
  return b.build();
}

std::string check_error(const std::string& bytes) {
  try {
    check_model(bytes, "model under test");
  } catch (const CheckFailed& e) {
    if (std::getenv("KMIDI_PRINT_ERRORS")) std::fprintf(stderr, "ERROR: %s\n", e.what());
    return e.what();
  }
  return "(check passed)";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

::onnx::ModelProto proto_of(const std::string& bytes) {
  ::onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

std::string bytes_of(const ::onnx::ModelProto& m) {
  std::string s;
  EXPECT_TRUE(m.SerializeToString(&s));
  return s;
}

TEST(OnnxCheck, DanglingInputNamesTheNodeAndTheValue) {
  ::onnx::ModelProto m = proto_of(relu_model());
  m.mutable_graph()->mutable_node(0)->set_input(0, "x_missing");
  const std::string error = check_error(bytes_of(m));
  EXPECT_TRUE(contains(error, "model under test: onnx checker:")) << error;
  EXPECT_TRUE(contains(error, "x_missing")) << error;
  EXPECT_TRUE(contains(error, "name: Relu_act OpType: Relu")) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << "one line, as the CLI prints the first line";
}

TEST(OnnxCheck, UnknownAttributeNamesTheNode) {
  ModelBuilder b;
  required_metadata(b);
  const Value x = b.input("x", DType::kFloat32, {"batch", 4});
  b.output(b.node("Softmax", {x}, {Attr::ints("axes", {1})}, "probs"), "p", DType::kFloat32, {"batch", 4});
  const std::string error = check_error(b.build());
  EXPECT_TRUE(contains(error, "Unrecognized attribute: axes for operator Softmax")) << error;
  EXPECT_TRUE(contains(error, "Softmax_probs")) << error;

  ModelBuilder typed;
  required_metadata(typed);
  const Value y = typed.input("x", DType::kFloat32, {"batch", 4});
  typed.output(typed.node("Softmax", {y}, {{"axis", 1.0f}}, "probs"), "p", DType::kFloat32, {"batch", 4});
  const std::string type_error = check_error(typed.build());
  EXPECT_TRUE(contains(type_error, "Mismatched attribute type in 'Softmax_probs : axis'")) << type_error;
}

TEST(OnnxCheck, WrongAttributeValueFailsShapeInferenceAtTheNode) {
  ModelBuilder b;
  required_metadata(b);
  const Value x = b.input("x", DType::kFloat32, {"batch", 4, 5});
  b.output(b.transpose(x, {0, 1}, "swap"), "y", DType::kFloat32, {"batch", 5, 4});
  const std::string error = check_error(b.build());
  EXPECT_TRUE(contains(error, "shape inference:")) << error;
  EXPECT_TRUE(contains(error, "Transpose_swap")) << error;
}

TEST(OnnxCheck, DeclaredOutputShapeMustMatchInference) {
  const std::string error = check_error(relu_model(/*declared_width=*/5));
  EXPECT_TRUE(contains(error, "shape inference:")) << error;
  EXPECT_TRUE(contains(error, "(5) vs (4)") || contains(error, "(4) vs (5)")) << error;
}

TEST(OnnxCheck, DeclaredOutputTypeMustMatchInference) {
  ModelBuilder b;
  required_metadata(b);
  const Value x = b.input("x", DType::kFloat32, {"batch", 4});
  b.output(b.relu(x), "y", DType::kInt64, {"batch", 4});
  const std::string error = check_error(b.build());
  EXPECT_TRUE(contains(error, "shape inference:")) << error;
  EXPECT_TRUE(contains(error, "type")) << error;
}

TEST(OnnxCheck, KmidiConventions) {
  const std::string good = relu_model();
  EXPECT_EQ(check_error(good), "(check passed)");

  ::onnx::ModelProto m = proto_of(good);
  m.mutable_opset_import(0)->set_version(13);
  EXPECT_TRUE(contains(check_error(bytes_of(m)), "ai.onnx opset 13; expected 17"));

  m = proto_of(good);
  m.set_ir_version(7);
  EXPECT_TRUE(contains(check_error(bytes_of(m)), "IR version 7; expected 8"));

  m = proto_of(good);
  m.mutable_metadata_props()->RemoveLast();  // kmidi.model_family
  EXPECT_TRUE(contains(check_error(bytes_of(m)), "metadata key 'kmidi.model_family' is missing"));

  m = proto_of(good);
  auto* p = m.add_metadata_props();
  p->set_key("author");
  p->set_value("someone");
  EXPECT_TRUE(contains(check_error(bytes_of(m)), "metadata key 'author' is outside the 'kmidi.' namespace"));

  m = proto_of(good);
  m.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  EXPECT_TRUE(contains(check_error(bytes_of(m)), "onnx checker: Field 'shape' of 'type' is required but missing"));

  m = proto_of(good);
  m.mutable_graph()->mutable_node(0)->clear_name();
  EXPECT_TRUE(contains(check_error(bytes_of(m)), "node 0 (Relu) has no name"));
}

TEST(OnnxCheck, RefusesAnUnusedInitializerByName) {
  ::onnx::ModelProto m = proto_of(relu_model());
  ::onnx::TensorProto* t = m.mutable_graph()->add_initializer();
  t->set_name("const_12");
  t->set_data_type(::onnx::TensorProto::FLOAT);
  t->add_float_data(-3.4e38f);  // a 0-d tensor nothing reads, as the old attention emitted
  const std::string error = check_error(bytes_of(m));
  EXPECT_TRUE(contains(error, "model under test: initializer 'const_12' is not used by any node or graph output"))
      << error;
}

TEST(OnnxCheck, GarbageIsADataError) {
  try {
    check_model("definitely not protobuf \xff\xff\xff", "junk.onnx");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "junk.onnx: not a serialized ONNX ModelProto")) << e.what();
  }
  EXPECT_THROW(read_model_info("/nonexistent/model.onnx"), DataError);
}

// ---- write_checked_model ------------------------------------------------------

fs::path scratch(const std::string& name) { return test::scratch_dir("onnx_check_" + name); }

size_t file_count(const fs::path& dir) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

TEST(CheckedWrite, WritesAfterChecksAndHandsThemTheCandidate) {
  const fs::path dir = scratch("ok");
  const std::string target = (dir / "m.onnx").string();
  const std::string bytes = relu_model();
  std::string seen;
  write_checked_model(target, bytes, {[&](const std::string& candidate) {
                        EXPECT_NE(candidate, target);
                        EXPECT_FALSE(fs::exists(target));
                        seen = files::read_all(candidate);
                      }});
  EXPECT_EQ(seen, bytes);
  EXPECT_EQ(files::read_all(target), bytes);
  EXPECT_EQ(file_count(dir), 1u);
}

TEST(CheckedWrite, FailingCheckKeepsThePreviousFileAndNoTemporary) {
  const fs::path dir = scratch("failing_check");
  const std::string target = (dir / "m.onnx").string();
  const std::string old_bytes = relu_model(4, "old");
  write_checked_model(target, old_bytes);
  try {
    write_checked_model(target, relu_model(4, "new"),
                        {[](const std::string&) { throw CheckFailed("parity: logits differ by 0.5"); }});
    FAIL();
  } catch (const CheckFailed& e) {
    EXPECT_TRUE(contains(e.what(), "logits differ")) << e.what();
  }
  EXPECT_EQ(files::read_all(target), old_bytes);
  EXPECT_EQ(file_count(dir), 1u);
}

TEST(CheckedWrite, BrokenModelIsNeverWritten) {
  const fs::path dir = scratch("broken");
  const std::string target = (dir / "m.onnx").string();
  try {
    write_checked_model(target, relu_model(/*declared_width=*/7));
    FAIL();
  } catch (const CheckFailed& e) {
    EXPECT_TRUE(contains(e.what(), target + ": shape inference")) << e.what();
  }
  EXPECT_FALSE(fs::exists(target));
  EXPECT_EQ(file_count(dir), 0u);
}

/// Runs write_checked_model in a child that KMIDI_FAULT kills at `point`.
void write_and_die_at(const std::string& point, const std::string& target, const std::string& bytes) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("KMIDI_FAULT", (point + ":" + target).c_str(), 1);
    write_checked_model(target, bytes);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST(CheckedWrite, CrashBeforeTheRenameKeepsThePreviousFile) {
  for (const std::string point : {"onnx_write_candidate", "onnx_write_checked"}) {
    const fs::path dir = scratch("crash_" + point);
    const std::string target = (dir / "m.onnx").string();
    const std::string old_bytes = relu_model(4, "old");
    write_checked_model(target, old_bytes);
    write_and_die_at(point, target, relu_model(4, "new"));
    EXPECT_EQ(files::read_all(target), old_bytes) << point;
    // The killed process left its candidate behind ...
    EXPECT_EQ(file_count(dir), 2u) << point;
    // ... and the next write of the same target removes it.
    const std::string newer = relu_model(4, "newer");
    write_checked_model(target, newer);
    EXPECT_EQ(files::read_all(target), newer);
    EXPECT_EQ(file_count(dir), 1u) << point;
  }
}

}  // namespace
}  // namespace kmidi::onnx
