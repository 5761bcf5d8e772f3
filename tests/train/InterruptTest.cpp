// Signals and kills against a real training process (tests/train/train_child).

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <csignal>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <filesystem>
#include <thread>

#include "core/Files.h"
#include "tests/train/TrainTestUtil.h"
#include "train/Checkpoint.h"
#include "train/runtime/Runtime.h"

namespace kmidi::train {
namespace {

namespace fs = std::filesystem;

/// Waits until the child has logged a training row (it is inside the loop).
bool wait_for_training(const std::string& run_dir, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    if (fs::exists(run_dir + "/metrics.jsonl", ec) &&
        files::read_all(run_dir + "/metrics.jsonl").find("\"split\":\"train\"") != std::string::npos) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(Interrupt, SigtermSavesACheckpointExits130AndResumes) {
  const std::string dir = test::scratch_dir("sigterm");
  test::write_text(dir + "/job.yaml", test::fixture_job_yaml(dir, "{max_steps: 1000000, batch_size: 32, log_every: 10}"));
  const test::Child child = test::spawn_child({dir + "/job.yaml"}, {}, dir + "/stderr1.txt");
  ASSERT_GT(child.pid, 0);
  ASSERT_TRUE(wait_for_training(dir + "/job", 60)) << files::read_all(child.stderr_path);
  ::kill(child.pid, SIGTERM);
  const int status = test::wait_child(child, 60);
  const std::string err = files::read_all(child.stderr_path);
  ASSERT_TRUE(WIFEXITED(status)) << err;
  EXPECT_EQ(WEXITSTATUS(status), 130) << err;
  EXPECT_NE(err.find("stop requested; finishing the current step"), std::string::npos) << err;
  EXPECT_NE(err.find("interrupted: Terminated after step"), std::string::npos) << err;

  CheckpointStore store(dir + "/job/checkpoints", 3);
  const auto list = store.list();
  ASSERT_EQ(list.size(), 1u);
  const int64_t saved = list[0].first;
  EXPECT_GE(saved, 10);
  EXPECT_EQ(checkpoint_problem(list[0].second), "");

  const test::Child again = test::spawn_child({dir + "/job.yaml", "train.max_steps=" + std::to_string(saved + 3)}, {},
                                              dir + "/stderr2.txt");
  const int status2 = test::wait_child(again, 120);
  const std::string err2 = files::read_all(again.stderr_path);
  ASSERT_TRUE(WIFEXITED(status2)) << err2;
  EXPECT_EQ(WEXITSTATUS(status2), 0) << err2;
  EXPECT_NE(err2.find("resumed from " + list[0].second + " at step " + std::to_string(saved)), std::string::npos) << err2;
  EXPECT_NE(err2.find("training ended at step " + std::to_string(saved + 3)), std::string::npos) << err2;
}

TEST(Interrupt, SecondSignalAbortsAtOnce) {
  const std::string dir = test::scratch_dir("sigterm_twice");
  test::write_text(dir + "/job.yaml", test::fixture_job_yaml(dir, "{max_steps: 1000000, batch_size: 32, log_every: 10}"));
  const test::Child child = test::spawn_child({dir + "/job.yaml"}, {}, dir + "/stderr.txt");
  ASSERT_GT(child.pid, 0);
  ASSERT_TRUE(wait_for_training(dir + "/job", 60)) << files::read_all(child.stderr_path);
  // Two different signals: a second identical one could merge with the first while pending.
  ::kill(child.pid, SIGINT);
  ::kill(child.pid, SIGTERM);
  const int status = test::wait_child(child, 60);
  const std::string err = files::read_all(child.stderr_path);
  ASSERT_TRUE(WIFEXITED(status)) << err;
  EXPECT_EQ(WEXITSTATUS(status), 130) << err;
  EXPECT_NE(err.find("second stop signal; aborting without saving"), std::string::npos) << err;
}

TEST(Interrupt, KillDuringCheckpointWriteKeepsThePreviousOne) {
  const std::string dir = test::scratch_dir("kill_write");
  test::write_text(dir + "/job.yaml",
                   test::fixture_job_yaml(dir, "{max_steps: 30, batch_size: 32, checkpoint_every: 10, log_every: 10}"));
  const test::Child child =
      test::spawn_child({dir + "/job.yaml"}, {"KMIDI_FAULT=atomic_write:step-0000000020.ckpt"}, dir + "/stderr1.txt");
  const int status = test::wait_child(child, 120);
  ASSERT_TRUE(WIFSIGNALED(status)) << files::read_all(child.stderr_path);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);

  CheckpointStore store(dir + "/job/checkpoints", 3);
  const auto list = store.list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].first, 10);
  EXPECT_EQ(checkpoint_problem(list[0].second), "");
  bool temporary_left = false;
  for (const auto& e : fs::directory_iterator(dir + "/job/checkpoints")) {
    temporary_left |= e.path().filename().string().find("step-0000000020.ckpt.tmp.") == 0;
  }
  EXPECT_TRUE(temporary_left) << "the kill hit the write of step 20";

  const test::Child again = test::spawn_child({dir + "/job.yaml"}, {}, dir + "/stderr2.txt");
  const int status2 = test::wait_child(again, 120);
  const std::string err2 = files::read_all(again.stderr_path);
  ASSERT_TRUE(WIFEXITED(status2)) << err2;
  EXPECT_EQ(WEXITSTATUS(status2), 0) << err2;
  EXPECT_NE(err2.find("resumed from " + list[0].second + " at step 10"), std::string::npos) << err2;
  for (const auto& e : fs::directory_iterator(dir + "/job/checkpoints")) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
  EXPECT_EQ(store.list().back().first, 30);
}

/// A job that failed inside StopSignals' scope, then a signal, then exit `code`.
[[noreturn]] void fail_then_signal(int signals, int code) {
  try {
    StopSignals scope;
    throw std::runtime_error("a peer has ended");
  } catch (const std::runtime_error&) {
  }
  for (int i = 0; i < signals; ++i) ::raise(i % 2 == 0 ? SIGTERM : SIGINT);
  std::_Exit(code);
}

TEST(Interrupt, AStopSignalWhileAFailedJobEndsKeepsItsExitCode) {
  // torchrun SIGTERMs the surviving ranks when one dies; a rank that has
  // already seen the failure and is ending with exit 5 must still end so,
  // not be reported as killed by SIGTERM (seen in CI as a race).
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(fail_then_signal(1, 5), ::testing::ExitedWithCode(5), "");
  EXPECT_EXIT(fail_then_signal(2, 5), ::testing::ExitedWithCode(130), "");
  // Without a failure the previous (default) handler comes back.
  EXPECT_EXIT(
      {
        { StopSignals scope; }
        ::raise(SIGTERM);
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGTERM), "");
}

}  // namespace
}  // namespace kmidi::train
