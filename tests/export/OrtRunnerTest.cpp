// The onnxruntime runner: tensors of every dtype survive the trip, outputs come
// back in the graph's order, and a broken setup or a hung process fails
// loudly and in bounded time.

#include <gtest/gtest.h>
#include <signal.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "core/Errors.h"
#include "onnx/check/OrtRunner.h"
#include "onnx/torch/TorchTensors.h"
#include "onnx/CheckedWrite.h"
#include "onnx/Metadata.h"
#include "onnx/ModelBuilder.h"
#include "tests/support/TestSupport.h"

namespace kmidi::onnx {
namespace {

namespace fs = std::filesystem;

fs::path scratch(const std::string& name) { return fs::path(test::scratch_dir("ort_runner_" + name)) / name; }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// One Identity per dtype; outputs declared in an order that is not alphabetical.
std::string identity_model() {
  ModelBuilder b;
  b.set_metadata(meta::kFormatVersion, meta::kCurrentFormatVersion);
  b.set_metadata(meta::kModelFamily, "test");
  const std::vector<std::pair<std::string, DType>> types = {
      {"f32", DType::kFloat32}, {"f64", DType::kFloat64}, {"f16", DType::kFloat16}, {"i64", DType::kInt64},
      {"i32", DType::kInt32},   {"i8", DType::kInt8},     {"u8", DType::kUInt8},    {"flag", DType::kBool}};
  std::vector<Value> inputs;
  for (const auto& [name, dtype] : types) inputs.push_back(b.input(name, dtype, {"batch", 3}));
  for (size_t i = types.size(); i-- > 0;) {
    b.output(b.identity(inputs[i]), "z_" + types[i].first, types[i].second, {"batch", 3});
  }
  return b.build();
}

std::string identity_model_path() {
  const std::string path = scratch("identity.onnx").string();
  if (!fs::exists(path)) write_checked_model(path, identity_model());
  return path;
}

data::NamedTensors identity_inputs() {
  data::NamedTensors in;
  in.set("f32", torch::tensor({{1.5f, -2.25f, 3e-8f}, {0.0f, -0.0f, 1e30f}}));
  in.set("f64", torch::tensor({{1.0 / 3, -2.0, 1e-300}, {4.0, 5.0, -6.0}}, torch::kDouble));
  in.set("f16", torch::tensor({{0.5f, 1.0f, -2.0f}, {65504.0f, 0.0f, 1.0f}}).to(torch::kHalf));
  in.set("i64", torch::tensor({{INT64_MIN, -1L, 0L}, {1L, INT64_MAX, 42L}}, torch::kLong));
  in.set("i32", torch::tensor({{INT32_MIN, -1, 0}, {1, INT32_MAX, 7}}, torch::kInt));
  in.set("i8", torch::tensor({{-128, -1, 0}, {1, 127, 5}}, torch::kChar));
  in.set("u8", torch::tensor({{0, 1, 2}, {128, 254, 255}}, torch::kByte));
  in.set("flag", torch::tensor({{true, false, true}, {false, false, true}}, torch::kBool));
  return in;
}

TEST(OrtRunner, EveryDtypeRoundTripsInGraphOutputOrder) {
  const data::NamedTensors in = identity_inputs();
  const data::NamedTensors out = run_onnxruntime(identity_model_path(), in);
  EXPECT_EQ(out.names(),
            (std::vector<std::string>{"z_flag", "z_u8", "z_i8", "z_i32", "z_i64", "z_f16", "z_f64", "z_f32"}));
  for (const auto& [name, tensor] : in.items()) {
    const at::Tensor& got = out.at("z_" + name);
    EXPECT_EQ(got.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(got, tensor)) << name;
  }
}

TEST(OrtRunner, NonContiguousInputsAreSentByValue) {
  data::NamedTensors in = identity_inputs();
  const torch::Tensor wide = torch::arange(12, torch::kFloat).reshape({3, 4});
  const torch::Tensor strided = wide.t().slice(0, 0, 2);  // [2, 3], not contiguous
  ASSERT_FALSE(strided.is_contiguous());
  data::NamedTensors replaced;
  for (const auto& [name, tensor] : in.items()) replaced.set(name, name == "f32" ? strided : tensor);
  const data::NamedTensors out = run_onnxruntime(identity_model_path(), replaced);
  EXPECT_TRUE(torch::equal(out.at("z_f32"), strided.contiguous()));
}

TEST(OrtRunner, OnnxruntimeRefusalIsACheckFailure) {
  data::NamedTensors in = identity_inputs();
  data::NamedTensors wrong;
  for (const auto& [name, tensor] : in.items()) wrong.set(name == "i64" ? "i64_typo" : name, tensor);
  try {
    run_onnxruntime(identity_model_path(), wrong);
    FAIL();
  } catch (const CheckFailed& e) {
    EXPECT_TRUE(contains(e.what(), "identity.onnx")) << e.what();
    EXPECT_TRUE(contains(e.what(), "missing [i64], unexpected [i64_typo]")) << e.what();
  }
}

TEST(OrtRunner, MissingNodeIsAnError) {
  OrtOptions options;
  options.node = "/nonexistent/bin/node";
  try {
    run_onnxruntime(identity_model_path(), identity_inputs(), options);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_TRUE(contains(e.what(), "node executable '/nonexistent/bin/node' does not exist")) << e.what();
  }
  options.node = "kmidi-no-such-node-binary";
  try {
    run_onnxruntime(identity_model_path(), identity_inputs(), options);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_TRUE(contains(e.what(), "'kmidi-no-such-node-binary' not found on PATH")) << e.what();
  }
}

TEST(OrtRunner, MissingOnnxruntimeNodeIsAnError) {
  const fs::path empty = scratch("empty_node_modules");
  fs::create_directories(empty);
  OrtOptions options;
  options.node_modules = empty.string();
  try {
    run_onnxruntime(identity_model_path(), identity_inputs(), options);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_TRUE(contains(e.what(), "onnxruntime-node not found in " + empty.string())) << e.what();
  }
}

TEST(OrtRunner, MissingModelIsADataError) {
  try {
    run_onnxruntime("/nonexistent/model.onnx", identity_inputs());
    FAIL();
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "model /nonexistent/model.onnx does not exist")) << e.what();
  }
}

TEST(OrtRunner, HungProcessIsKilledAtTheTimeout) {
  // A runner that never answers and leaves a grandchild behind: both must die.
  const fs::path script = scratch("hang.js");
  const fs::path pid_file = scratch("grandchild.pid");
  {
    std::ofstream f(script);
    f << "const { spawn } = require('child_process');\n"
         "const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], {stdio: 'ignore'});\n"
         "require('fs').writeFileSync('" << pid_file.string() << "', String(child.pid));\n"
         "process.stderr.write('hanging on purpose\\n');\n"
         "setTimeout(() => {}, 600000);\n";
  }
  OrtOptions options;
  options.script = script.string();
  options.timeout_seconds = 2.0;
  const auto start = std::chrono::steady_clock::now();
  try {
    run_onnxruntime(identity_model_path(), identity_inputs(), options);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "timed out, no result within 2 s; node was killed")) << e.what();
    EXPECT_TRUE(contains(e.what(), "hanging on purpose")) << e.what();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 20.0);
  ASSERT_TRUE(fs::exists(pid_file));
  std::ifstream in(pid_file);
  pid_t grandchild = 0;
  in >> grandchild;
  ASSERT_GT(grandchild, 0);
  // SIGKILL to the process group reaches it; it may linger briefly as a zombie of init.
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = ::kill(grandchild, 0) != 0;
    if (!gone) {
      std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
      std::string pid_text, comm, state;
      stat >> pid_text >> comm >> state;
      gone = state == "Z";
    }
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "grandchild " << grandchild << " survived the timeout";
}

TEST(OrtRunner, TimingReportsMedianAndP90) {
  TimingOptions timing;
  timing.warmup_runs = 2;
  timing.timed_runs = 9;
  const OrtTiming t = time_onnxruntime(identity_model_path(), identity_inputs(), timing);
  ASSERT_EQ(t.runs_ms.size(), 9u);
  std::vector<double> sorted = t.runs_ms;
  std::sort(sorted.begin(), sorted.end());
  for (double ms : sorted) EXPECT_GT(ms, 0.0);
  // numpy.percentile with linear interpolation: median is rank 4 of 0..8, p90 rank 7.2.
  EXPECT_DOUBLE_EQ(t.median_ms, sorted[4]);
  EXPECT_NEAR(t.p90_ms, sorted[7] + 0.2 * (sorted[8] - sorted[7]), 1e-9);
  timing.timed_runs = 0;
  EXPECT_THROW(time_onnxruntime(identity_model_path(), identity_inputs(), timing), UsageError);
}

}  // namespace
}  // namespace kmidi::onnx
