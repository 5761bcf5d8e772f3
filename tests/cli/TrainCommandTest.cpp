// The `kmidi train` and `kmidi evaluate` commands as a user runs them. The
// product registers no test fixture, so these cover the command line and its
// errors; the jobs themselves are tested through train::run_training.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>

#include "core/Files.h"
#include "tests/support/TestSupport.h"
#include "tests/train/TmpfsMount.h"

namespace kmidi::cli {
namespace {

struct Result {
  int code = -1;
  std::string output;
};

Result kmidi(const std::string& args) {
  const std::string command = test::shell_quote(KMIDI_CLI) + " " + args + " 2>&1";
  const test::CommandResult r = test::run_shell(command);
  return {r.exit_code, r.output};
}

TEST(TrainCommand, TrainRejectsAnUnknownTaskWithExitCode2) {
  const std::string dir = test::scratch_dir("cli_unknown");
  files::write_atomic(dir + "/job.yaml", "task: no_such_task\nrun: {name: a}\ntrain: {max_steps: 5}\n");
  const Result r = kmidi("train --config " + dir + "/job.yaml");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("config error: " + dir + "/job.yaml: task: unknown task 'no_such_task'"), std::string::npos)
      << r.output;
}

TEST(TrainCommand, TrainRunsWithPassiveOpenMpThreadsWithoutTheUserSettingIt) {
  // Spinning OpenMP threads halve CPU training throughput (BENCHMARKS.md):
  // kmidi re-executes itself with OMP_WAIT_POLICY=passive unless the user chose.
  const std::string dir = test::scratch_dir("cli_omp");
  ASSERT_EQ(kmidi("prepare --config " + test::source_path("configs/prepare_pop909_sample.yaml") + " output.dir=" + dir +
                  "/data").code,
            0);
  const std::string job = "train --config " + test::source_path("configs/midi_generator_tiny.yaml") + " data.dir=" + dir +
                          "/data run.output_dir=" + dir + " train.max_steps=2 train.eval_every=0";
  const auto log_of = [&](const std::string& name) { return files::read_all(dir + "/" + name + "/train.log"); };
  const test::CommandResult chosen_by_kmidi =
      test::run_shell("env -u OMP_WAIT_POLICY " + test::shell_quote(KMIDI_CLI) + " " + job + " run.name=a 2>&1");
  ASSERT_EQ(chosen_by_kmidi.exit_code, 0) << chosen_by_kmidi.output;
  EXPECT_NE(log_of("a").find("OpenMP wait policy passive"), std::string::npos) << log_of("a");
  const test::CommandResult chosen_by_user =
      test::run_shell("OMP_WAIT_POLICY=active " + test::shell_quote(KMIDI_CLI) + " " + job + " run.name=b 2>&1");
  ASSERT_EQ(chosen_by_user.exit_code, 0) << chosen_by_user.output;
  EXPECT_NE(log_of("b").find("OpenMP wait policy active"), std::string::npos) << log_of("b");
}

/// The POP909 sample prepared under `dir`/data, and a tiny generator job on it.
std::string tiny_generator_job(const std::string& dir) {
  const Result prepared = kmidi("prepare --config " + test::source_path("configs/prepare_pop909_sample.yaml") +
                                " output.dir=" + dir + "/data");
  EXPECT_EQ(prepared.code, 0) << prepared.output;
  return "train --config " + test::source_path("configs/midi_generator_tiny.yaml") + " data.dir=" + dir +
         "/data train.eval_every=0";
}

TEST(TrainCommand, TrainsLastLineCarriesTheRunHealthOfMetricsJsonl) {
  const std::string dir = test::scratch_dir("cli_health");
  const std::string job = tiny_generator_job(dir) + " run.output_dir=" + dir + " run.name=h train.max_steps=3";
  const test::CommandResult r = test::run_shell(test::shell_quote(KMIDI_CLI) + " " + job + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string last_line = r.output.substr(r.output.rfind('\n', r.output.size() - 2) + 1);
  const auto result = nlohmann::json::parse(last_line);
  ASSERT_TRUE(result.contains("health")) << last_line;
  const auto& health = result["health"];
  EXPECT_EQ(health["skipped_steps"], 0);
  EXPECT_EQ(health["stalls"], 0);
  EXPECT_GE(health["slowest_step"].get<int64_t>(), 1);
  EXPECT_LE(health["slowest_step"].get<int64_t>(), 3);
  EXPECT_GT(health["slowest_step_ms"].get<double>(), 0.0);
  EXPECT_GE(health["data_wait_share"].get<double>(), 0.0);
  EXPECT_LT(health["data_wait_share"].get<double>(), 1.0);

  std::istringstream rows(files::read_all(dir + "/h/metrics.jsonl"));
  int health_rows = 0;
  for (std::string line; std::getline(rows, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row["split"] != "health") continue;
    ++health_rows;
    EXPECT_EQ(row["step"], 3);
    for (const auto& [key, value] : health.items()) EXPECT_DOUBLE_EQ(row.at(key).get<double>(), value.get<double>()) << key;
  }
  EXPECT_EQ(health_rows, 1);
}

TEST(TrainCommand, TrainRefusesWithExitCode3WhenItsCheckpointsCannotFitAndWritesNothing) {
  const std::string dir = test::scratch_dir("cli_disk");
  test::TmpfsMount tight(dir + "/mnt", 64 * 1024);
  if (!tight.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (" << tight.error() << "); needs root";
  const Result r = kmidi(tiny_generator_job(dir) + " run.output_dir=" + tight.dir() + " run.name=full train.max_steps=3");
  EXPECT_EQ(r.code, 3) << r.output;
  EXPECT_NE(r.output.find("data error: not enough free disk space for the checkpoints in " + tight.dir() +
                          "/full/checkpoints: need "),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("but 65536 bytes (0.1 MiB) are free on the file system of " + tight.dir()), std::string::npos)
      << r.output;
  EXPECT_TRUE(std::filesystem::is_empty(tight.dir())) << "a refused start leaves no run folder";
}

TEST(TrainCommand, TrainAndEvaluateHelpListTheirOptions) {
  const Result train = kmidi("train --help");
  EXPECT_EQ(train.code, 0);
  for (const char* opt : {"--config", "--print-config", "overrides"}) EXPECT_NE(train.output.find(opt), std::string::npos) << opt;
  const Result eval = kmidi("evaluate --help");
  EXPECT_EQ(eval.code, 0);
  for (const char* opt : {"--checkpoint", "--split", "--predictions", "--raw-weights", "--print-config"}) {
    EXPECT_NE(eval.output.find(opt), std::string::npos) << opt;
  }
  const std::string dir = test::scratch_dir("cli_eval");
  files::write_atomic(dir + "/job.yaml", "task: x\n");
  const Result missing = kmidi("evaluate --config " + dir + "/job.yaml");
  EXPECT_EQ(missing.code, 2) << missing.output;
  EXPECT_NE(missing.output.find("--checkpoint is required"), std::string::npos) << missing.output;
}

}  // namespace
}  // namespace kmidi::cli
