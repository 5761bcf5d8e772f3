// The MIDI generator as a real 2-process data-parallel job: `kmidi train`
// twice under torchrun's variables (Gloo on loopback) against the same job in
// one process, on the repo's real POP909 sample.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "datasets/corpus/Prepare.h"
#include "datasets/corpus/PrepareConfig.h"
#include "tests/support/TestSupport.h"
#include "tests/train/DriverJobs.h"
#include "tests/train/ProcessHarness.h"
#include "train/Checkpoint.h"

namespace kmidi::train {
namespace {

const std::string& shards() {
  static std::string dir;
  static std::once_flag once;
  std::call_once(once, [] {
    dir = test::scratch_dir("generator_ddp_shards", test::ScratchLifetime::kProgram);
    corpus::run_prepare(corpus::load_prepare_config(test::source_path("configs/prepare_pop909_sample.yaml"),
                                                    {"output.dir=" + dir}));
  });
  return dir;
}

/// The tiny generator job without dropout (masks differ by rank by design)
/// and with a constant learning rate, so that 4 steps resumed to 8 follow the
/// same schedule as 8 straight.
void run_job(int world, const std::string& dir, std::vector<std::string> overrides) {
  std::vector<std::string> argv{KMIDI_CLI, "train", "--config", test::source_path("configs/midi_generator_tiny.yaml"),
                                "data.dir=" + shards(), "run.output_dir=" + dir, "run.name=job", "run.threads=1",
                                "run.tensorboard=false", "model.dropout=0", "train.schedule.name=constant",
                                "train.max_steps=8", "train.batch_size=8", "train.eval_every=4",
                                "train.checkpoint_every=4", "train.keep_last_k=4",
                                // Adam divides by sqrt(v): float rounding of tiny gradients (summed over 8
                                // rows or over 2 x 4) is amplified by the step size; a small lr keeps the
                                // honest 1e-6 bound meaningful in fp32.
                                "train.optimizer.lr=1e-4"};
  argv.insert(argv.end(), overrides.begin(), overrides.end());
  const int port = testing::free_port();
  std::vector<testing::Process> ranks;
  for (int r = 0; r < world; ++r) {
    const auto env = world == 1 ? std::map<std::string, std::string>{}
                                : testing::launcher_env(testing::EnvStyle::kTorchrun, r, world, port);
    ranks.push_back(testing::Process::start(argv, env, dir, "rank" + std::to_string(r)));
  }
  for (auto& p : ranks) {
    const testing::ProcessResult result = p.wait(300);
    ASSERT_EQ(result.exit_code, 0) << testing::describe(result);
  }
}

NamedTensorList weights(const std::string& dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "/job/checkpoints/step-%010lld.ckpt", static_cast<long long>(step));
  return CheckpointFile(dir + name).tensors(checkpoint_section::kModel);
}

double max_difference(const NamedTensorList& a, const NamedTensorList& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    worst = std::max(worst, (a[i].second.to(torch::kDouble) - b[i].second.to(torch::kDouble)).abs().max().item<double>());
  }
  return worst;
}

TEST(GeneratorDdp, TwoRanksOfHalfTheBatchEqualOneRankOfTheWholeBatch) {
  const std::string single = test::scratch_dir("gen_ddp_single"), pair = test::scratch_dir("gen_ddp_pair"),
                    accumulated = test::scratch_dir("gen_ddp_accum");
  // fp32: under bf16 autocast each rank's (or micro-step's) weight gradients
  // come out of bf16 matmuls rounded on their own, so the sums differ by more than 1e-6.
  run_job(1, single, {"train.precision=fp32"});
  run_job(2, pair, {"train.precision=fp32"});
  run_job(2, accumulated, {"train.precision=fp32", "train.grad_accumulation=2"});
  const auto reference = weights(single, 8);
  EXPECT_GT(max_difference(reference, weights(single, 4)), 1e-4) << "training changed the weights";
  EXPECT_LT(max_difference(reference, weights(pair, 8)), 1e-6);
  EXPECT_LT(max_difference(reference, weights(accumulated, 8)), 1e-6);
  EXPECT_FALSE(std::filesystem::exists(pair + "/job/train.log.rank1")) << "only rank 0 writes the run folder";
}

TEST(GeneratorDdp, ATwoRankRunResumedFromItsCheckpointEqualsAnUninterruptedOne) {
  const std::string straight = test::scratch_dir("gen_ddp_straight"), resumed = test::scratch_dir("gen_ddp_resumed");
  // Under bf16 autocast (auto's choice on CPUs with native bf16); fp32 resumes
  // are bit-exact in Trainer/ExactResume, 1-process bf16 ones too.
  run_job(2, straight, {"train.precision=bf16"});
  run_job(2, resumed, {"train.precision=bf16", "train.max_steps=4"});
  run_job(2, resumed, {"train.precision=bf16"});
  const auto a = weights(straight, 8), b = weights(resumed, 8);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
}

}  // namespace
}  // namespace kmidi::train
