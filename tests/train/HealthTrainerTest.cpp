// Run health through the trainer, each check driven by an injected fault
// (tests/train/FaultyTask.h): non-finite losses, slow steps and data, a
// stalled step in a real process (tests/train/HealthChild.cpp), and the
// free-space check at start on a real small file system.

#include "train/Trainer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Strings.h"
#include "tests/support/TestSupport.h"
#include "tests/train/FaultyTask.h"
#include "tests/train/TmpfsMount.h"
#include "tests/train/TrainTestUtil.h"
#include "train/Checkpoint.h"

namespace kmidi::train {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<test::FaultyTask> faulty_task(const test::FaultConfig& fault, uint64_t seed = 11) {
  return std::make_unique<test::FaultyTask>(test::make_groove_task(seed, 0.1), fault);
}

TrainerOptions options_for(const std::string& run_dir, const std::string& resume = "none") {
  TrainerOptions o;
  o.run_dir = run_dir;
  o.resume = resume;
  o.task_name = "groove_fixture";
  o.tensorboard = false;
  return o;
}

/// Log lines written while it lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(2000)) {
    test::cpu_context();  // installs kmidi's logger; the sink must go on that one
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() { spdlog::default_logger()->sinks().pop_back(); }
  std::vector<std::string> lines_with(const std::string& text) const {
    std::vector<std::string> out;
    for (const auto& line : sink_->last_formatted()) {
      if (line.find(text) != std::string::npos) out.push_back(line);
    }
    return out;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

std::vector<nlohmann::json> rows_of(const std::string& run_dir, const std::string& split) {
  std::vector<nlohmann::json> rows;
  std::istringstream in(files::read_all(run_dir + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    const auto row = nlohmann::json::parse(line);
    if (row["split"] == split) rows.push_back(row);
  }
  return rows;
}

/// The ids that the non-finite report must name: the first 8 of `indices`, then "and N more".
std::string expected_items(test::FaultyTask& task, const std::vector<int64_t>& indices) {
  std::vector<std::string> ids;
  for (size_t i = 0; i < indices.size() && i < 8; ++i) {
    ids.push_back(task.dataset(Split::kTrain)->item_id(static_cast<size_t>(indices[i])));
  }
  std::string text = strings::join(ids, ", ");
  if (indices.size() > 8) text += " and " + std::to_string(indices.size() - 8) + " more";
  return text;
}

TEST(RunHealth, NonFiniteSkipNamesTheStepAndItsItemsOnce) {
  test::FaultConfig fault;
  fault.nan_at_forward = 5;
  auto task = faulty_task(fault);
  TrainConfig c = test::small_config();
  c.nonfinite = "skip_step";
  const std::string dir = test::scratch_dir("health_nan_skip");
  LogCapture log;
  Trainer trainer(*task, c, options_for(dir), test::cpu_context());
  const TrainResult r = trainer.fit();

  EXPECT_EQ(r.step, 20);
  const auto alerts = log.lines_with("non-finite");
  ASSERT_EQ(alerts.size(), 1u) << "one alert for one non-finite step";
  const std::string items = expected_items(*task, task->forward_indices(5));
  EXPECT_NE(alerts[0].find("non-finite values at step 5 (epoch 0): loss_sum nan"), std::string::npos) << alerts[0];
  EXPECT_NE(alerts[0].find("items of the batch with the non-finite loss: " + items), std::string::npos)
      << alerts[0] << "\nexpected items: " << items;
  EXPECT_NE(alerts[0].find("and 24 more"), std::string::npos) << alerts[0];
  EXPECT_NE(alerts[0].find("skipping the update"), std::string::npos) << alerts[0];

  EXPECT_EQ(r.health.skipped_steps, 1);
  EXPECT_EQ(r.health.stalls, 0);
  const auto health_rows = rows_of(dir, "health");
  ASSERT_EQ(health_rows.size(), 1u) << "one health row per session";
  EXPECT_EQ(health_rows[0]["step"], 20);
  EXPECT_EQ(health_rows[0]["skipped_steps"], 1);
  EXPECT_EQ(health_rows[0]["stalls"], 0);
  EXPECT_EQ(log.lines_with("run health: " + health_json(r.health)).size(), 1u);
}

TEST(RunHealth, ConsecutiveNonFiniteStepsStopAtTheCap) {
  test::FaultConfig fault;
  fault.nan_at_forward = 3;
  fault.nan_forwards = 3;  // steps 3, 4, 5
  auto task = faulty_task(fault);
  TrainConfig c = test::small_config();
  c.nonfinite = "skip_step";
  c.max_consecutive_skips = 2;
  LogCapture log;
  Trainer trainer(*task, c, options_for(test::scratch_dir("health_nan_cap")), test::cpu_context());
  try {
    trainer.fit();
    FAIL() << "a third non-finite step in a row must stop the run";
  } catch (const CheckFailed& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("non-finite values at step 5"), std::string::npos) << what;
    EXPECT_NE(what.find("3 consecutive steps were skipped, more than train.max_consecutive_skips (2)"), std::string::npos)
        << what;
    EXPECT_NE(what.find(expected_items(*task, task->forward_indices(5))), std::string::npos) << what;
  }
  const auto skipped = log.lines_with("skipping the update");
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_NE(skipped[0].find("non-finite values at step 3"), std::string::npos) << skipped[0];
  EXPECT_NE(skipped[1].find("non-finite values at step 4"), std::string::npos) << skipped[1];
  EXPECT_EQ(trainer.health().skipped_steps, 3);  // the third went unapplied too, then the run stopped
}

TEST(RunHealth, NonFiniteStopNamesTheItems) {
  test::FaultConfig fault;
  fault.nan_at_forward = 2;
  auto task = faulty_task(fault);
  TrainConfig c = test::small_config();
  c.batch_size = 4;  // every item is named
  Trainer trainer(*task, c, options_for(test::scratch_dir("health_nan_stop")), test::cpu_context());
  try {
    trainer.fit();
    FAIL() << "train.nonfinite 'stop' must stop the run";
  } catch (const CheckFailed& e) {
    const std::string what = e.what();
    const std::string items = expected_items(*task, task->forward_indices(2));
    EXPECT_EQ(items.find("more"), std::string::npos);
    EXPECT_NE(what.find("non-finite values at step 2"), std::string::npos) << what;
    EXPECT_NE(what.find("items of the batch with the non-finite loss: " + items + ";"), std::string::npos)
        << what << "\nexpected items: " << items;
  }
}

TEST(RunHealth, HealthBlockNamesTheSlowestStepAndTheDataWaitAcrossAResume) {
  test::FaultConfig fault;
  fault.sleep_at_forward = 4;  // step 4 computes for 0.3 s longer
  fault.sleep_s = 0.3;
  fault.sleep_at_batch = -1;   // every batch takes 20 ms more to build
  fault.batch_sleep_s = 0.02;
  TrainConfig c = test::small_config();
  c.max_steps = 8;
  c.eval_every = 0;
  c.prefetch = false;  // the training thread waits for every batch
  const std::string dir = test::scratch_dir("health_block");
  TrainResult first;
  {
    auto task = faulty_task(fault);
    Trainer trainer(*task, c, options_for(dir), test::cpu_context());
    first = trainer.fit();
  }
  const RunHealth& h = first.health;
  EXPECT_EQ(h.times.slowest_step, 4);
  EXPECT_GE(h.times.slowest_step_ms, 300.0);
  EXPECT_GE(h.times.data_wait_s, 8 * 0.02);
  EXPECT_LT(h.times.data_wait_s, 0.3) << "the slow forward is not data wait";
  EXPECT_GE(h.times.step_s, 0.3 + 8 * 0.02);
  EXPECT_GT(h.times.data_wait_share(), 0.0);
  EXPECT_LT(h.times.data_wait_share(), 1.0);
  const auto rows = rows_of(dir, "health");
  ASSERT_EQ(rows.size(), 1u);
  for (const auto& [key, value] : health_numbers(h)) EXPECT_NEAR(rows[0][key].get<double>(), value, 1e-9) << key;

  // A resumed session adds to the run's figures; its fast steps leave step 4 the slowest.
  c.max_steps = 12;
  auto task = faulty_task(test::FaultConfig{});
  Trainer trainer(*task, c, options_for(dir, "auto"), test::cpu_context());
  const TrainResult second = trainer.fit();
  EXPECT_EQ(second.step, 12);
  EXPECT_EQ(second.health.times.slowest_step, 4);
  EXPECT_DOUBLE_EQ(second.health.times.slowest_step_ms, h.times.slowest_step_ms);
  EXPECT_GT(second.health.times.step_s, h.times.step_s);
  EXPECT_EQ(rows_of(dir, "health").size(), 2u);
}

// ---------------------------------------------------------------------------
// The stalled-step watchdog, in a real process.

struct ChildRun {
  int exit_code = -1;
  std::string stdout_text, stderr_text;
  double seconds = 0;
};

ChildRun run_health_child(const std::string& dir, const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  test::write_text(dir + "/job.yaml", yaml);
  std::string command = "timeout -s KILL 120 " KMIDI_BINARY_DIR "/tests/train/health_child " + dir + "/job.yaml";
  for (const auto& o : overrides) command += " " + test::shell_quote(o);
  command += " 2>" + dir + "/stderr.txt";
  const auto start = std::chrono::steady_clock::now();
  const test::CommandResult r = test::run_shell(command);
  ChildRun out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.exit_code = r.exit_code;
  out.stdout_text = r.output;
  out.stderr_text = files::read_all(dir + "/stderr.txt");
  return out;
}

std::vector<std::string> lines_with(const std::string& text, const std::string& what) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(what) != std::string::npos) out.push_back(line);
  }
  return out;
}

std::string stall_job(const std::string& dir, const std::string& fault) {
  return test::fixture_job_yaml(dir, "{max_steps: 8, batch_size: 32, log_every: 2, prefetch: false, stall_timeout_s: 2}") +
         "fault: " + fault + "\n";
}

TEST(RunHealth, StalledForwardEndsTheRunWithExitCode6AfterSavingTheLastFinishedStep) {
  const std::string dir = test::scratch_dir("health_stall_forward");
  const ChildRun run = run_health_child(dir, stall_job(dir, "{sleep_at_forward: 4, sleep_s: 100}"));
  ASSERT_EQ(run.exit_code, kExitStalled) << run.stderr_text;
  EXPECT_LT(run.seconds, 60.0) << "the watchdog must end the run, not the fault's sleep";
  const auto alerts = lines_with(run.stderr_text, "stalled");
  ASSERT_EQ(alerts.size(), 1u) << run.stderr_text;
  EXPECT_NE(alerts[0].find("step 4 stalled: not finished after 2."), std::string::npos) << alerts[0];
  EXPECT_NE(alerts[0].find("in its forward, backward or gradient exchange (train.stall_timeout_s is 2)"),
            std::string::npos)
      << alerts[0];
  EXPECT_NE(alerts[0].find("exit code 6"), std::string::npos) << alerts[0];
  EXPECT_EQ(run.stderr_text.find("Exception"), std::string::npos) << "stack-free: " << run.stderr_text;

  const std::string saved = dir + "/job/checkpoints/step-0000000003.ckpt";
  EXPECT_EQ(lines_with(run.stderr_text, "saved " + saved + " (step 3, the last finished step)").size(), 1u)
      << run.stderr_text;
  ASSERT_EQ(checkpoint_problem(saved), "");
  const auto meta = nlohmann::json::parse(CheckpointFile(saved).bytes(checkpoint_section::kMeta));
  EXPECT_EQ(meta["step"], 3);
  EXPECT_EQ(meta["health"]["stalls"], 1);

  // The same command without the fault resumes from it; the run remembers its stall.
  const ChildRun again = run_health_child(dir, stall_job(dir, "{}"));
  ASSERT_EQ(again.exit_code, 0) << again.stderr_text;
  EXPECT_EQ(lines_with(again.stderr_text, "resumed from " + saved + " at step 3").size(), 1u) << again.stderr_text;
  EXPECT_TRUE(lines_with(again.stderr_text, "stalled").empty()) << again.stderr_text;
  const auto health = nlohmann::json::parse(again.stdout_text);
  EXPECT_EQ(health["stalls"], 1);
  EXPECT_EQ(health["skipped_steps"], 0);
}

TEST(RunHealth, StalledDataWaitIsNamedAsSuch) {
  const std::string dir = test::scratch_dir("health_stall_data");
  const ChildRun run = run_health_child(dir, stall_job(dir, "{sleep_at_batch: 3, batch_sleep_s: 100}"));
  ASSERT_EQ(run.exit_code, kExitStalled) << run.stderr_text;
  const auto alerts = lines_with(run.stderr_text, "stalled");
  ASSERT_EQ(alerts.size(), 1u) << run.stderr_text;
  EXPECT_NE(alerts[0].find("step 3 stalled: not finished after 2."), std::string::npos) << alerts[0];
  EXPECT_NE(alerts[0].find("waiting for its data"), std::string::npos) << alerts[0];
  EXPECT_EQ(checkpoint_problem(dir + "/job/checkpoints/step-0000000002.ckpt"), "");
}

TEST(RunHealth, StallTimeoutZeroTurnsTheWatchdogOff) {
  const std::string dir = test::scratch_dir("health_stall_off");
  const ChildRun run = run_health_child(dir, stall_job(dir, "{sleep_at_forward: 2, sleep_s: 3}"),
                                        {"train.stall_timeout_s=0"});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_TRUE(lines_with(run.stderr_text, "stalled").empty()) << run.stderr_text;
  const auto health = nlohmann::json::parse(run.stdout_text);
  EXPECT_EQ(health["stalls"], 0);
  EXPECT_EQ(health["slowest_step"], 2);
  EXPECT_GE(health["slowest_step_ms"].get<double>(), 3000.0);
}

// ---------------------------------------------------------------------------
// Free space for checkpoints, checked at start.

uint64_t file_size(const std::string& path) { return static_cast<uint64_t>(fs::file_size(path)); }

TEST(DiskSpaceCheck, ExpectedCheckpointBytesMatchWrittenCheckpoints) {
  for (const bool extras : {false, true}) {
    auto task = test::make_groove_task(3, 0.1);
    TrainConfig c = test::small_config();
    c.max_steps = 2;
    c.schedule.warmup_steps = 0;
    c.eval_every = 0;
    if (extras) {
      c.ema.decay = 0.9;
      c.optimizer.amsgrad = true;
    }
    const std::string dir = test::scratch_dir(extras ? "ckpt_size_extras" : "ckpt_size");
    Trainer trainer(*task, c, options_for(dir), test::cpu_context());
    const uint64_t before = trainer.expected_checkpoint_bytes();  // no optimizer state yet
    const TrainResult r = trainer.fit();
    const uint64_t actual = file_size(r.last_checkpoint);
    EXPECT_GE(before, actual) << "EMA and AMSGrad " << extras;
    EXPECT_LE(before, actual + 512) << "EMA and AMSGrad " << extras;
    EXPECT_GE(trainer.expected_checkpoint_bytes(), actual);
  }
}

TEST(DiskSpaceCheck, RefusesToStartWhenTheCheckpointsCannotFitAndWritesNothing) {
  TrainConfig c = test::small_config();
  c.max_steps = 4;
  c.checkpoint_every = 1;  // keep_last_k (3) files, rotated, and best.ckpt
  const uint64_t one = [&] {
    auto task = test::make_groove_task(3, 0.1);
    return Trainer(*task, c, options_for(test::scratch_dir("ckpt_size_probe")), test::cpu_context())
        .expected_checkpoint_bytes();
  }();
  constexpr uint64_t kPage = 4096;
  const uint64_t small = std::max<uint64_t>(kPage, 4 * one / kPage * kPage);  // under 5 checkpoints
  const uint64_t large = (6 * one / kPage + 4) * kPage;
  ASSERT_LT(small, 5 * one);

  test::TmpfsMount tight(test::scratch_dir("disk_tight") + "/mnt", small);
  if (!tight.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (" << tight.error() << "); needs root";
  struct statvfs st {};
  ASSERT_EQ(::statvfs(tight.dir().c_str(), &st), 0);
  const uint64_t free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  {
    auto task = test::make_groove_task(3, 0.1);
    try {
      Trainer trainer(*task, c, options_for(tight.dir() + "/runs/job"), test::cpu_context());
      FAIL() << "5 checkpoints of ~" << one << " bytes must not fit into " << free_bytes;
    } catch (const DataError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("not enough free disk space for the checkpoints in " + tight.dir() + "/runs/job/checkpoints"),
                std::string::npos)
          << what;
      const size_t at = what.find("need ");
      ASSERT_NE(at, std::string::npos) << what;
      const uint64_t needed = std::stoull(what.substr(at + 5));
      EXPECT_NEAR(static_cast<double>(needed), 5.0 * one, 5 * 64.0) << what;
      EXPECT_NE(what.find("but " + std::to_string(free_bytes) + " bytes"), std::string::npos) << what;
      EXPECT_NE(what.find("train.keep_last_k"), std::string::npos) << what;
    }
  }
  EXPECT_TRUE(fs::is_empty(tight.dir())) << "a refused start writes nothing";

  // With room for them, the same run trains and keeps its checkpoints there.
  test::TmpfsMount roomy(test::scratch_dir("disk_roomy") + "/mnt", large);
  ASSERT_TRUE(roomy.mounted()) << roomy.error();
  auto task = test::make_groove_task(3, 0.1);
  Trainer trainer(*task, c, options_for(roomy.dir() + "/runs/job"), test::cpu_context());
  const TrainResult r = trainer.fit();
  EXPECT_EQ(r.step, 4);
  EXPECT_EQ(checkpoint_problem(r.last_checkpoint), "");
  EXPECT_EQ(trainer.checkpoints().list().size(), 3u);
}

}  // namespace
}  // namespace kmidi::train
