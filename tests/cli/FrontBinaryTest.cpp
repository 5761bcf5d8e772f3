// build/kmidi starts the commands that need no tensors without LibTorch, and
// hands the others to build/libexec/kmidi in one exec (cli/Main.cpp). Which
// shared libraries a run loads is read from the dynamic loader's own log
// (LD_DEBUG=files), which follows the process across exec.

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/Files.h"
#include "tests/support/TestSupport.h"

namespace kmidi::cli {
namespace {

namespace fs = std::filesystem;

const std::string kPop001 = std::string(KMIDI_SHARED_DATA) + "/pop909/POP909/001/001.mid";

struct LoggedRun {
  int code = -1;
  std::string output;  ///< stdout and stderr
  std::string loader_log;  ///< LD_DEBUG=files of every program the process ran
};

/// Runs `binary args` with the dynamic loader logging each object it loads.
LoggedRun run_logged(const std::string& binary, const std::string& args, const std::string& env = "") {
  const std::string dir = test::scratch_dir("cli_startup_ld");
  const test::CommandResult r = test::run_shell("env -u OMP_WAIT_POLICY " + env + " LD_DEBUG=files LD_DEBUG_OUTPUT=" +
                                                dir + "/ld " + test::shell_quote(binary) + " " + args + " 2>&1");
  LoggedRun run{r.exit_code, r.output, ""};
  for (const auto& entry : fs::directory_iterator(dir)) run.loader_log += files::read_all(entry.path().string());
  fs::remove_all(dir);
  return run;
}

/// How many times the log shows a library whose file name starts with
/// `library` being loaded (once per program that needs it).
int loads_of(const LoggedRun& run, const std::string& library) {
  int count = 0;
  std::istringstream lines(run.loader_log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("\tfile=" + library) != std::string::npos && line.find("generating link map") != std::string::npos) {
      ++count;
    }
  }
  return count;
}

std::string normalised_help(const std::string& binary) {
  test::CommandResult r = test::run({binary, "--help"});
  EXPECT_EQ(r.exit_code, 0) << binary;
  for (size_t at = r.output.find(binary); at != std::string::npos; at = r.output.find(binary, at)) {
    r.output.replace(at, binary.size(), "kmidi");
  }
  return r.output;
}

TEST(FrontBinary, TorchFreeCommandsLoadNoLibTorch) {
  const LoggedRun help = run_logged(KMIDI_CLI, "--help");
  EXPECT_EQ(help.code, 0) << help.output;
  const LoggedRun inspect = run_logged(KMIDI_CLI, "inspect " + test::shell_quote(kPop001));
  EXPECT_EQ(inspect.code, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("format: 1"), std::string::npos) << inspect.output;
  for (const LoggedRun* run : {&help, &inspect}) {
    EXPECT_EQ(loads_of(*run, "libspdlog.so"), 1) << "the loader logged nothing:\n" << run->loader_log;
    EXPECT_EQ(loads_of(*run, "libc10.so"), 0) << run->loader_log;
    EXPECT_EQ(loads_of(*run, "libtorch_cpu.so"), 0);
    EXPECT_EQ(loads_of(*run, "libhdf5_serial.so"), 0) << "build/kmidi links no HDF5";
  }

  // onnx, prepare, validate, fetch-data run in build/libexec/data/kmidi: HDF5, no LibTorch.
  const LoggedRun onnx = run_logged(KMIDI_CLI, "onnx");
  EXPECT_EQ(onnx.code, 2);
  EXPECT_NE(onnx.output.find("A subcommand is required"), std::string::npos) << onnx.output;
  EXPECT_EQ(loads_of(onnx, "libhdf5_serial.so"), 1) << onnx.loader_log;
  EXPECT_EQ(loads_of(onnx, "libc10.so"), 0);
}

TEST(FrontBinary, ATorchCommandLoadsLibTorchOnceAndReadsAsBefore) {
  // Before the split, kmidi loaded LibTorch for every command and a model
  // command loaded it twice (a re-exec to set OMP_WAIT_POLICY).
  const LoggedRun train = run_logged(KMIDI_CLI, "train --config missing.yaml");
  EXPECT_EQ(train.code, 2);
  EXPECT_EQ(train.output, "--config: File does not exist: missing.yaml\nRun with --help for more information.\n");
  EXPECT_EQ(loads_of(train, "libc10.so"), 1) << train.loader_log;

  const LoggedRun user_policy = run_logged(KMIDI_CLI, "train --config missing.yaml", "OMP_WAIT_POLICY=active");
  EXPECT_EQ(user_policy.code, 2);
  EXPECT_EQ(loads_of(user_policy, "libc10.so"), 1);

  const LoggedRun help = run_logged(KMIDI_CLI, "evaluate --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.output.find("--checkpoint"), std::string::npos) << help.output;
}

TEST(FrontBinary, EveryBinaryListsEveryCommandAlike) {
  const std::string front = normalised_help(KMIDI_CLI);
  EXPECT_EQ(front, normalised_help(KMIDI_DATA_BINARY));
  EXPECT_EQ(front, normalised_help(KMIDI_TORCH_BINARY));
  for (const char* command : {"version", "inspect", "train", "evaluate", "generate", "evaluate-generation", "onnx",
                              "registry", "prepare", "fetch-data", "validate", "export", "humanize", "predict"}) {
    EXPECT_NE(front.find("\n  " + std::string(command) + " "), std::string::npos) << command << "\n" << front;
  }
}

TEST(FrontBinary, TheLibTorchBinaryRunsDirectly) {
  const test::CommandResult version = test::run_shell(test::shell_quote(KMIDI_TORCH_BINARY) + " version 2>&1");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.output.rfind("kmidi ", 0), 0u) << version.output;
  EXPECT_NE(version.output.find("\nLibTorch "), std::string::npos) << version.output;
  const LoggedRun train = run_logged(KMIDI_TORCH_BINARY, "train --config missing.yaml");
  EXPECT_EQ(train.code, 2);
  EXPECT_NE(train.output.find("--config: File does not exist: missing.yaml"), std::string::npos) << train.output;
}

TEST(FrontBinary, AMissingPartIsNamedWithExitCode1) {
  // A copy of build/kmidi with no libexec/ beside it.
  const std::string dir = test::scratch_dir("cli_startup_alone");
  const std::string alone = dir + "/kmidi";
  fs::copy_file(KMIDI_CLI, alone);
  const test::CommandResult train = test::run_shell(test::shell_quote(alone) + " train --config missing.yaml 2>&1");
  EXPECT_EQ(train.exit_code, 1);
  EXPECT_EQ(train.output, "kmidi: internal error: cannot run `kmidi train`: " + dir +
                              "/libexec/kmidi: No such file or directory (a part of kmidi that the default build "
                              "target makes)\n");
  const test::CommandResult validate = test::run_shell(test::shell_quote(alone) + " validate --config x.yaml 2>&1");
  EXPECT_EQ(validate.exit_code, 1);
  EXPECT_NE(validate.output.find(dir + "/libexec/data/kmidi: No such file or directory"), std::string::npos)
      << validate.output;
  // What the front runs itself still works.
  const test::CommandResult inspect = test::run({alone, "inspect", kPop001});
  EXPECT_EQ(inspect.exit_code, 0);
  EXPECT_NE(inspect.output.find("format: 1"), std::string::npos) << inspect.output;
}

}  // namespace
}  // namespace kmidi::cli
