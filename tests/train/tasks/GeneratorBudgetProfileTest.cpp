// The generator through `kmidi train`'s path with data.batching and
// train.profile on the repo's POP909 sample: batches within the budget, the
// profile table in train.log and profile.json in the run folder.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <mutex>

#include "core/Config.h"
#include "core/Files.h"
#include "datasets/corpus/Prepare.h"
#include "datasets/corpus/PrepareConfig.h"
#include "tests/support/TestSupport.h"
#include "train/Job.h"
#include "train/tasks/Tasks.h"
#include "train/tasks/MidiGeneratorTask.h"

namespace kmidi::train {
namespace {

const std::string& sample_shards() {
  static std::string dir;
  static std::once_flag once;
  std::call_once(once, [] {
    dir = test::scratch_dir("budget_generator_shards");
    corpus::PrepareConfig c = corpus::load_prepare_config(test::source_path("configs/prepare_pop909_sample.yaml"),
                                                          {"output.dir=" + dir});
    corpus::run_prepare(c);
  });
  return dir;
}

std::unique_ptr<JobConfig> job(const std::string& out, std::vector<std::string> overrides) {
  overrides.push_back("data.dir=" + sample_shards());
  overrides.push_back("run.output_dir=" + out);
  return load_job_config(test::source_path("configs/midi_generator_tiny.yaml"), overrides, builtin_tasks());
}

TEST(GeneratorTokenBudget, TrainsWithinTheBudgetAndProfilesTheSteps) {
  // Fixed windows of up to 32 tokens: pieces end in shorter windows, so rows differ in length.
  const std::string out = test::scratch_dir("generator_budget");
  auto j = job(out, {"data.windowing=windows", "data.batching.tokens_per_batch=96", "train.profile=true",
                     "train.max_steps=8", "train.eval_every=0", "run.tensorboard=false"});
  {
    torch::manual_seed(3);
    MidiGeneratorTask task(static_cast<MidiGeneratorJobConfig&>(*j->task_config), TaskContext{});
    const auto train = task.dataset(Split::kTrain);
    ASSERT_EQ(train->tokens_per_batch(), 96);
    EXPECT_EQ(task.dataset(Split::kValidation)->tokens_per_batch(), 0);
    SamplerOptions o;
    o.tokens_per_batch = 96;
    std::vector<int64_t> costs;
    for (size_t i = 0; i < train->size(); ++i) costs.push_back(train->item_cost(i));
    bool varied = false;
    for (int64_t c : costs) varied = varied || c != costs[0];
    ASSERT_TRUE(varied) << "the sample's windows must differ in length for this test";
    for (const auto& step : TrainSampler(static_cast<int64_t>(costs.size()), o, costs).epoch_steps(0)) {
      EXPECT_LE(train->get_batch(step[0]).inputs.at("input_ids").numel(), 96);
    }
  }
  const TrainResult r = run_training(*j, builtin_tasks());
  EXPECT_EQ(r.step, 8);
  const std::string run = out + "/midi_generator_tiny";
  const std::string log = files::read_all(run + "/train.log");
  EXPECT_NE(log.find("token-budget batching: 96 tokens per micro-batch"), std::string::npos) << log;
  EXPECT_NE(log.find("profile of 7 step(s)"), std::string::npos) << log;
  EXPECT_NE(log.find("aten::"), std::string::npos);
  const auto p = nlohmann::json::parse(files::read_all(run + "/profile.json"));
  double phases = 0;
  for (const auto& [name, ms] : p["phase_ms_per_step"].items()) phases += ms.get<double>();
  EXPECT_NEAR(phases, p["step_ms"].get<double>(), 1e-6 * p["step_ms"].get<double>());
  // The step is the model's work: forward and backward dominate it.
  EXPECT_GT(p["phase_ms_per_step"]["forward"].get<double>() + p["phase_ms_per_step"]["backward"].get<double>(),
            0.5 * p["step_ms"].get<double>());
}

TEST(GeneratorTokenBudget, ABudgetBelowMaxLengthIsAConfigError) {
  try {
    job(test::scratch_dir("generator_budget_error"), {"data.batching.tokens_per_batch=16"});
    FAIL() << "expected a config error";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("tokens_per_batch 16 is smaller than max_length 32"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace kmidi::train
