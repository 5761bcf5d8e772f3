// The `kmidi train` and `kmidi evaluate` commands as a user runs them. The
// product registers no test fixture, so these cover the command line and its
// errors; the jobs themselves are tested through train::run_training.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "core/Files.h"
#include "tests/support/TestSupport.h"

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
