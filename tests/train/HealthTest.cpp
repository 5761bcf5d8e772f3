// The torch-free parts of run health: the stalled-step watchdog, step
// timings, the health block, and the free-space arithmetic and check.

#include "train/Health.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "core/Errors.h"
#include "core/Files.h"
#include "tests/support/TestSupport.h"
#include "tests/train/TmpfsMount.h"
#include "train/DiskSpace.h"

namespace kmidi::train {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct StallLog {
  std::mutex mutex;
  std::vector<std::pair<int64_t, double>> calls;
  size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return calls.size();
  }
};

TEST(StallWatchdog, FiresOncePerStalledStepAndNeverForStepsThatFinish) {
  StallLog log;
  StallWatchdog watchdog(200ms, [&](int64_t step, double seconds) {
    std::lock_guard<std::mutex> lock(log.mutex);
    log.calls.emplace_back(step, seconds);
  });
  // Steps well inside the timeout: no alert.
  for (int64_t step = 1; step <= 5; ++step) {
    watchdog.step_started(step);
    std::this_thread::sleep_for(10ms);
    watchdog.step_finished();
  }
  std::this_thread::sleep_for(500ms);  // between steps nothing is timed
  EXPECT_EQ(log.count(), 0u);

  // Step 6 stays stuck for 5 timeouts: one alert, naming it.
  watchdog.step_started(6);
  std::this_thread::sleep_for(1000ms);
  watchdog.step_finished();
  ASSERT_EQ(log.count(), 1u);
  EXPECT_EQ(log.calls[0].first, 6);
  EXPECT_GE(log.calls[0].second, 0.2);
  EXPECT_LT(log.calls[0].second, 0.9);

  // A later stalled step is a new event.
  watchdog.step_started(7);
  std::this_thread::sleep_for(600ms);
  watchdog.step_finished();
  ASSERT_EQ(log.count(), 2u);
  EXPECT_EQ(log.calls[1].first, 7);
}

TEST(StallWatchdog, ZeroTimeoutIsOff) {
  std::atomic<int> calls{0};
  StallWatchdog watchdog(0ms, [&](int64_t, double) { ++calls; });
  watchdog.step_started(1);
  std::this_thread::sleep_for(100ms);
  watchdog.step_finished();
  EXPECT_EQ(calls.load(), 0);
}

TEST(RunHealth, StepTimesAndTheHealthBlock) {
  RunHealth h;
  h.skipped_steps = 2;
  h.stalls = 1;
  h.times.record(1, 0.010, 0.100);
  h.times.record(2, 0.200, 0.400);  // the slowest
  h.times.record(3, 0.030, 0.300);
  EXPECT_EQ(h.times.slowest_step, 2);
  EXPECT_DOUBLE_EQ(h.times.slowest_step_ms, 400.0);
  EXPECT_DOUBLE_EQ(h.times.data_wait_share(), 0.24 / 0.8);

  const auto j = nlohmann::json::parse(health_json(h));
  EXPECT_EQ(j["skipped_steps"], 2);
  EXPECT_EQ(j["stalls"], 1);
  EXPECT_EQ(j["slowest_step"], 2);
  EXPECT_DOUBLE_EQ(j["slowest_step_ms"].get<double>(), 400.0);
  EXPECT_DOUBLE_EQ(j["data_wait_s"].get<double>(), 0.24);
  EXPECT_DOUBLE_EQ(j["data_wait_share"].get<double>(), 0.3);
  const auto numbers = health_numbers(h);
  for (const auto& [key, value] : numbers) EXPECT_DOUBLE_EQ(j.at(key).get<double>(), value) << key;
  EXPECT_EQ(numbers.size(), j.size());

  EXPECT_EQ(StepTimes{}.data_wait_share(), 0.0);  // no step yet: no division by zero
}

TEST(DiskSpace, CheckpointSpaceArithmetic) {
  // keep_last_k files, the one being written, and best.ckpt.
  EXPECT_EQ(checkpoint_space_needed(1000, 3, 0), 5000u);
  EXPECT_EQ(checkpoint_space_needed(1000, 1, 0), 3000u);
  // Existing checkpoints of the run are replaced, not added to.
  EXPECT_EQ(checkpoint_space_needed(1000, 3, 1500), 3500u);
  EXPECT_EQ(checkpoint_space_needed(1000, 3, 9000), 0u);
  EXPECT_EQ(checkpoint_space_needed(std::numeric_limits<uint64_t>::max() / 2, 3, 0),
            std::numeric_limits<uint64_t>::max());
}

TEST(DiskSpace, ExistingCheckpointsCountHardLinksOnce) {
  const std::string dir = test::scratch_dir("disk_existing");
  EXPECT_EQ(existing_checkpoint_bytes(dir + "/missing"), 0u);
  files::write_atomic(dir + "/step-0000000001.ckpt", std::string(1000, 'a'));
  files::write_atomic(dir + "/step-0000000002.ckpt", std::string(300, 'b'));
  files::write_atomic(dir + "/features.json", std::string(5000, 'c'));  // not a checkpoint
  fs::create_hard_link(dir + "/step-0000000001.ckpt", dir + "/best.ckpt");
  EXPECT_EQ(existing_checkpoint_bytes(dir), 1300u);
}

TEST(DiskSpace, RefusesWithTheNumbersOnASmallFileSystem) {
  test::TmpfsMount mount(test::scratch_dir("disk_tmpfs") + "/mnt", 1 << 20);
  if (!mount.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (" << mount.error() << "); needs root";
  const std::string checkpoints = mount.dir() + "/runs/job/checkpoints";  // not created yet

  const FreeSpace free = free_space(checkpoints);
  struct statvfs st {};
  ASSERT_EQ(::statvfs(mount.dir().c_str(), &st), 0);
  EXPECT_EQ(free.bytes, static_cast<uint64_t>(st.f_bavail) * st.f_frsize);
  EXPECT_EQ(free.bytes, 1u << 20);  // an empty tmpfs of 1 MiB
  EXPECT_EQ(free.checked_path, mount.dir());

  // 5 x 200000 = 1000000 bytes fit into 1048576.
  EXPECT_NO_THROW(require_checkpoint_space(checkpoints, 200000, 3));
  // 5 x 300000 = 1500000 do not.
  try {
    require_checkpoint_space(checkpoints, 300000, 3);
    FAIL() << "1500000 bytes of checkpoints must not fit into 1 MiB";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("not enough free disk space for the checkpoints in " + checkpoints), std::string::npos) << what;
    EXPECT_NE(what.find("need 1500000 bytes"), std::string::npos) << what;
    EXPECT_NE(what.find("(train.keep_last_k 3 + 2) checkpoints of about 300000 bytes"), std::string::npos) << what;
    EXPECT_NE(what.find("but 1048576 bytes (1.0 MiB) are free on the file system of " + mount.dir()), std::string::npos)
        << what;
  }
  // The check wrote nothing.
  EXPECT_TRUE(fs::is_empty(mount.dir()));

  // A real file on it lowers the free space the check sees.
  files::write_atomic(mount.dir() + "/filler", std::string(200 * 1024, 'x'));
  EXPECT_THROW(require_checkpoint_space(checkpoints, 200000, 3), DataError);
}

}  // namespace
}  // namespace kmidi::train
