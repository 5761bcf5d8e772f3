// A job's start-up: mistakes found before training leave no run folder
// (empty training data, a missing resume checkpoint or one of another task), a misspelt required key
// is named as such, and resuming from a checkpoint taken at an epoch's last
// step says nothing odd.

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/Errors.h"
#include "core/Files.h"
#include "tests/train/GrooveFixture.h"
#include "tests/train/TrainTestUtil.h"
#include "train/Checkpoint.h"
#include "train/Job.h"
#include "train/Trainer.h"

namespace kmidi::train {
namespace {

namespace fs = std::filesystem;

/// info.csv without its train rows (the split is the last column).
std::string csv_without_train_rows(const std::string& dir) {
  std::ifstream in(KMIDI_SHARED_DATA "/groove-midi/groove/info.csv");
  std::ofstream out(dir + "/info.csv");
  for (std::string line; std::getline(in, line);) {
    if (line.size() < 6 || line.compare(line.size() - 6, 6, ",train") != 0) out << line << "\n";
  }
  return dir + "/info.csv";
}

std::string write_job(const std::string& dir, const std::string& train_section, const std::string& extra = "") {
  test::write_text(dir + "/job.yaml", test::fixture_job_yaml(dir + "/runs", train_section) + extra);
  return dir + "/job.yaml";
}

TEST(Startup, EmptyTrainSplitIsNamedAndLeavesNoRunFolder) {
  const std::string dir = test::scratch_dir("startup_empty_train");
  const std::string job_file =
      write_job(dir, "{max_steps: 4, batch_size: 16}", "data: {csv: " + csv_without_train_rows(dir) + "}\n");
  auto job = load_job_config(job_file, {}, test::fixture_registry());
  try {
    run_training(*job, test::fixture_registry());
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), job_file + ": the train split of task groove_fixture has no items: nothing to "
                                                "train on (prepare data that gives every split some files)");
  }
  EXPECT_FALSE(fs::exists(dir + "/runs")) << "a failed start must not leave a run folder";
}

TEST(Startup, MissingResumeCheckpointLeavesNoRunFolder) {
  const std::string dir = test::scratch_dir("startup_missing_resume");
  auto job = load_job_config(write_job(dir, "{max_steps: 4, batch_size: 16}"), {"run.resume=" + dir + "/none.ckpt"},
                             test::fixture_registry());
  try {
    run_training(*job, test::fixture_registry());
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/none.ckpt: run.resume names no checkpoint file");
  }
  EXPECT_FALSE(fs::exists(dir + "/runs"));
}

TEST(Startup, ResumeCheckpointOfAnotherTaskIsRefusedAndLeavesNoRunFolder) {
  const std::string dir = test::scratch_dir("startup_resume_other_task");
  fs::create_directories(dir + "/a");
  fs::create_directories(dir + "/b");
  auto first = load_job_config(write_job(dir + "/a", "{max_steps: 2, batch_size: 16, checkpoint_every: 2}"), {},
                               test::fixture_registry());
  run_training(*first, test::fixture_registry());
  const std::string saved = dir + "/a/runs/" + first->run.name + "/checkpoints/step-0000000002.ckpt";
  // The same file, but stated as a checkpoint of the generator.
  CheckpointContents contents = CheckpointFile(saved).read_all();
  auto meta = nlohmann::json::parse(contents.meta_json);
  meta["task"] = "midi_generator";
  contents.meta_json = meta.dump();
  const std::string other = dir + "/generator.ckpt";
  write_checkpoint(other, contents);

  auto job = load_job_config(write_job(dir + "/b", "{max_steps: 4, batch_size: 16}"), {"run.resume=" + other},
                             test::fixture_registry());
  try {
    run_training(*job, test::fixture_registry());
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), other + ": the checkpoint was trained for task 'midi_generator', this job is "
                                             "task 'groove_fixture'");
  }
  EXPECT_FALSE(fs::exists(dir + "/b/runs")) << "a refused resume must not leave a run folder";
}

TEST(Startup, MisspeltRequiredKeyIsNamedBeforeTheRuleItBreaks) {
  const std::string dir = test::scratch_dir("startup_misspelt");
  const std::string file = dir + "/job.yaml";
  test::write_text(file, "task: groove_fixture\nrun: {name: a}\ntrain:\n  max_stesp: 5\n");
  try {
    load_job_config(file, {}, test::fixture_registry());
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), file + ":4:3: train.max_stesp: unknown key (did you mean 'train.max_steps'?)");
  }
}

/// Log lines at warning level or above while `run` runs.
template <class F>
std::vector<std::string> warnings_during(F&& run) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(500);
  sink->set_level(spdlog::level::warn);
  spdlog::default_logger()->sinks().push_back(sink);
  run();
  spdlog::default_logger()->sinks().pop_back();
  return sink->last_formatted();
}

TEST(Startup, ResumingAtAnEpochsLastStepSaysNothingOdd) {
  // 897 training rows in batches of 32: 29 steps per epoch.
  TrainConfig c = test::small_config();
  c.max_steps = 31;
  c.eval_every = 0;
  c.checkpoint_every = 29;
  const std::string dir = test::scratch_dir("startup_epoch_end");
  TrainerOptions options;
  options.run_dir = dir;
  options.task_name = "groove_fixture";
  options.config_yaml = "test config\n";
  {
    auto task = test::make_groove_task(3, 0.0);
    TrainConfig first = c;
    first.max_steps = 29;
    Trainer trainer(*task, first, options, test::cpu_context());
    ASSERT_EQ(trainer.steps_per_epoch(), 29);
    EXPECT_EQ(trainer.fit().step, 29);
  }
  auto task = test::make_groove_task(3, 0.0);
  Trainer trainer(*task, c, options, test::cpu_context());
  TrainResult result;
  const auto warnings = warnings_during([&] { result = trainer.fit(); });
  EXPECT_EQ(result.step, 31);
  EXPECT_EQ(trainer.state().position.epoch, 1);
  EXPECT_EQ(trainer.state().position.step_in_epoch, 2);
  for (const std::string& w : warnings) ADD_FAILURE() << "unexpected warning: " << w;

  // A data position really past the data (a larger batch since) is said plainly.
  auto again = test::make_groove_task(3, 0.0);
  TrainConfig larger = c;
  larger.batch_size = 64;  // 15 steps per epoch
  larger.max_steps = 40;
  TrainerOptions from_first = options;
  from_first.resume = dir + "/checkpoints/step-0000000029.ckpt";
  from_first.run_dir = test::scratch_dir("startup_epoch_end_larger");
  Trainer resumed(*again, larger, from_first, test::cpu_context());
  const auto plain = warnings_during([&] { resumed.fit(); });
  bool said = false;
  for (const std::string& w : plain) {
    said |= w.find("the checkpoint stopped after step 29 of epoch 0, but this data has only 15 steps per epoch (the "
                   "data or train.batch_size changed since); training goes on with epoch 1") != std::string::npos;
  }
  EXPECT_TRUE(said);
}

}  // namespace
}  // namespace kmidi::train
