// A data.mixture generator job as a real 2-process data-parallel `kmidi
// train` (Gloo on loopback) against the same job in one process: the ranks
// split each step's draws between them, so the weights agree to float
// rounding and the logged per-corpus draw counts are identical.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/Files.h"
#include "datasets/corpus/Prepare.h"
#include "datasets/corpus/PrepareConfig.h"
#include "tests/support/TestSupport.h"
#include "tests/train/DriverJobs.h"
#include "tests/train/ProcessHarness.h"
#include "train/Checkpoint.h"

namespace kmidi::train {
namespace {
namespace fs = std::filesystem;

/// midi_generator_tiny.yaml reading the POP909 sample and a copy of it as a
/// 0.75 / 0.25 mixture (the config file is written once per process).
const std::string& mixture_config() {
  static std::string path;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string root = test::scratch_dir("generator_mixture_ddp_data", test::ScratchLifetime::kProgram);
    corpus::run_prepare(corpus::load_prepare_config(test::source_path("configs/prepare_pop909_sample.yaml"),
                                                    {"output.dir=" + root + "/pop"}));
    fs::copy(root + "/pop", root + "/copy", fs::copy_options::recursive);
    std::string text = files::read_all(test::source_path("configs/midi_generator_tiny.yaml"));
    const std::string prepare_line = "  prepare: prepare_pop909_sample.yaml\n";
    const size_t at = text.find(prepare_line);
    if (at == std::string::npos) throw std::runtime_error("midi_generator_tiny.yaml changed: no data.prepare line");
    text.replace(at, prepare_line.size(),
                 "  mixture:\n    - {dir: " + root + "/pop, weight: 0.75}\n    - {dir: " + root +
                     "/copy, weight: 0.25}\n  mixture_draws_per_epoch: 40\n");
    path = root + "/job.yaml";
    files::write_atomic(path, text);
  });
  return path;
}

/// Without dropout (masks differ by rank by design), fp32 and a small constant
/// learning rate, as GeneratorDdpTest compares 1 and 2 processes.
void run_job(int world, const std::string& dir) {
  const std::vector<std::string> argv{
      KMIDI_CLI, "train", "--config", mixture_config(), "run.output_dir=" + dir, "run.name=job", "run.threads=1",
      "run.tensorboard=false", "model.dropout=0", "train.schedule.name=constant", "train.max_steps=8",
      "train.batch_size=8", "train.eval_every=0", "train.checkpoint_every=8", "train.precision=fp32",
      "train.optimizer.lr=1e-4", "train.log_every=1"};
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

/// draws.pop and draws.copy of each logged training step.
std::vector<std::pair<double, double>> draws(const std::string& dir) {
  std::ifstream in(dir + "/job/metrics.jsonl");
  std::vector<std::pair<double, double>> out;
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row.at("split") == "train") out.emplace_back(row.at("draws.pop").get<double>(), row.at("draws.copy").get<double>());
  }
  return out;
}

TEST(GeneratorMixtureDdp, TwoRanksDrawWhatOneRankDraws) {
  const std::string single = test::scratch_dir("gen_mix_ddp_single"), pair = test::scratch_dir("gen_mix_ddp_pair");
  run_job(1, single);
  run_job(2, pair);
  const auto a = CheckpointFile(single + "/job/checkpoints/step-0000000008.ckpt").tensors(checkpoint_section::kModel);
  const auto b = CheckpointFile(pair + "/job/checkpoints/step-0000000008.ckpt").tensors(checkpoint_section::kModel);
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, (a[i].second.to(torch::kDouble) - b[i].second.to(torch::kDouble)).abs().max().item<double>());
  }
  EXPECT_LT(worst, 1e-6);
  const auto one = draws(single), two = draws(pair);
  ASSERT_EQ(one.size(), 8u);
  EXPECT_EQ(one, two);
  // 8 steps of 8 rows: epoch 0 (30 + 10 draws) and 3 steps of epoch 1.
  double pop = 0;
  for (size_t s = 0; s < 5; ++s) pop += one[s].first;
  EXPECT_EQ(pop, 30.0);
}

}  // namespace
}  // namespace kmidi::train
