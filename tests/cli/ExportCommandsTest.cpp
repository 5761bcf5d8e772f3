// `kmidi onnx inspect` and `kmidi registry validate`: output and the
// documented exit codes (0 ok, 3 unreadable data, 4 failed check).

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "core/Files.h"
#include "onnx/Metadata.h"
#include "onnx/ModelBuilder.h"
#include "tests/support/TestSupport.h"

namespace kmidi {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

CliRun run_kmidi(const std::string& args) {
  const std::string command = std::string(KMIDI_CLI) + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  CliRun r;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

fs::path scratch() { return test::scratch_dir("cli_export"); }

std::string model(int64_t declared_width) {
  onnx::ModelBuilder b;
  b.set_metadata(onnx::meta::kFormatVersion, "1");
  b.set_metadata(onnx::meta::kModelFamily, "groove");
  const onnx::Value x = b.input("input", onnx::DType::kFloat32, {"batch", 64});
  b.output(b.sigmoid(x), "output", onnx::DType::kFloat32, {"batch", declared_width});
  return b.build();
}

TEST(CliExport, OnnxInspectPrintsTheInterface) {
  const std::string path = (scratch() / "groove.onnx").string();
  files::write_atomic(path, model(64));
  const CliRun r = run_kmidi("onnx inspect --check " + path);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("IR 8, opset 17"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("input                    float32  [batch, 64]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kmidi.model_family = groove"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("check passed"), std::string::npos) << r.out;
}

TEST(CliExport, OnnxInspectCheckFailsWithExitCode4) {
  const std::string path = (scratch() / "broken.onnx").string();
  files::write_atomic(path, model(65));
  const CliRun r = run_kmidi("onnx inspect --check " + path);
  EXPECT_EQ(r.exit_code, 4) << r.out;
  EXPECT_NE(r.out.find("kmidi: check failed: " + path + ": shape inference:"), std::string::npos) << r.out;
  files::write_atomic(path, "not a model");
  EXPECT_EQ(run_kmidi("onnx inspect " + path).exit_code, 3);
}

TEST(CliExport, RegistryValidate) {
  const fs::path dir = scratch();
  files::write_atomic((dir / "groove.onnx").string(), model(64));
  const std::string entry = R"({"id": "groove", "file": "groove.onnx", "format": "onnx", "task": "groove_prediction",
                                "input_size": 64, "output_size": 32, "status": "trained",
                                "training": {"dataset_id": "groove-midi", "dataset_license": "CC-BY-4.0"},
                                "exports": {"onnx_path": "groove.onnx"}})";
  const std::string good = (dir / "registry.json").string();
  files::write_atomic(good, "{\"models\": [" + entry + "]}");
  CliRun r = run_kmidi("registry validate " + good);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("valid, 1 model(s)"), std::string::npos) << r.out;

  const std::string bad = (dir / "bad.json").string();
  files::write_atomic(bad, "{\"models\": [" + entry + ", " + entry + "]}");
  r = run_kmidi("registry validate " + bad);
  EXPECT_EQ(r.exit_code, 4) << r.out;
  EXPECT_NE(r.out.find("models[1] (id \"groove\") at /models/1/id: duplicate id \"groove\""), std::string::npos)
      << r.out;
  files::write_atomic(bad, "{\"models\": ");
  r = run_kmidi("registry validate " + bad);
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_NE(r.out.find("not valid JSON at byte"), std::string::npos) << r.out;
}


TEST(CliExport, ExportRefusesIncompleteCommandLinesWithExitCode2) {
  const fs::path dir = scratch();
  const std::string out = (dir / "exports").string();
  CliRun r = run_kmidi("export --all --configs " + dir.string());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("export: give the output folder with --out DIR"), std::string::npos) << r.out;
  r = run_kmidi("export --out " + out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("export: give --config FILE (or --all --configs ...)"), std::string::npos) << r.out;
  r = run_kmidi("export --all --out " + out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("export --all: give the model configs with --configs"), std::string::npos) << r.out;

  // A folder without job configs (no top-level task: key).
  files::write_atomic((dir / "configs" / "prepare.yaml").string(), "corpus: {}\n");
  r = run_kmidi("export --all --configs " + (dir / "configs").string() + " --out " + out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("export --all: no model config found in"), std::string::npos) << r.out;

  // A task the product does not know: a config error, nothing written.
  const std::string job = (dir / "job.yaml").string();
  files::write_atomic(job, "task: no_such_family\nrun: {name: job}\n");
  r = run_kmidi("export --config " + job + " --out " + out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("kmidi: config error: " + job), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out) && !fs::is_empty(out));
}

}  // namespace
}  // namespace kmidi
