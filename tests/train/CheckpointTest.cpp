#include "train/Checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/Errors.h"
#include "core/Files.h"
#include "tests/train/TrainTestUtil.h"

namespace kmidi::train {
namespace {

namespace fs = std::filesystem;

CheckpointContents sample_contents(int64_t step) {
  torch::manual_seed(static_cast<uint64_t>(step));
  CheckpointContents c;
  c.meta_json = "{\"step\": " + std::to_string(step) + "}";
  c.config_yaml = "task: demo\n";
  c.model = {{"fc.weight", torch::randn({3, 4})},
             {"fc.bias", torch::randn({4}, torch::kDouble)},
             {"emb.weight", torch::randn({2, 2}).to(torch::kBFloat16)},
             {"norm.count", torch::tensor(int64_t{123456789012})},
             {"mask", torch::tensor({true, false, true})},
             {"bytes", torch::arange(0, 256).to(torch::kUInt8)},
             {"empty", torch::zeros({0, 5})}};
  c.optimizer = {{"fc.weight.exp_avg", torch::randn({3, 4})}, {"fc.weight.step", torch::tensor(int64_t{7})}};
  c.ema = {{"fc.weight", torch::randn({3, 4})}};
  c.rng = {{"cpu", at::detail::getDefaultCPUGenerator().get_state()}};
  c.artifacts = {{"tokenizer.json", "{\"vocab\": [1, 2, 3]}"}, {"notes.txt", std::string("a\0b", 3)}};
  return c;
}

TEST(Checkpoint, RoundTripIsBitExact) {
  const std::string dir = test::scratch_dir("ckpt_roundtrip");
  const std::string path = dir + "/a.ckpt";
  const CheckpointContents c = sample_contents(3);
  write_checkpoint(path, c);
  CheckpointFile f(path);
  EXPECT_EQ(f.format_version(), kCheckpointFormatVersion);
  const CheckpointContents r = f.read_all();
  EXPECT_EQ(r.meta_json, c.meta_json);
  EXPECT_EQ(r.config_yaml, c.config_yaml);
  EXPECT_TRUE(test::bit_equal(r.model, c.model));
  EXPECT_TRUE(test::bit_equal(r.optimizer, c.optimizer));
  EXPECT_TRUE(test::bit_equal(r.ema, c.ema));
  EXPECT_TRUE(test::bit_equal(r.rng, c.rng));
  EXPECT_EQ(r.artifacts, c.artifacts);
  EXPECT_EQ(r.model[2].second.scalar_type(), torch::kBFloat16);
  // Header bytes as documented: magic then version 1.
  const std::string bytes = files::read_all(path);
  EXPECT_EQ(bytes.substr(0, 8), "KMIDICKP");
  EXPECT_EQ(bytes.substr(8, 4), std::string("\x01\0\0\0", 4));
  EXPECT_EQ(bytes.substr(bytes.size() - 20, 8), "KMIDIEND");
  EXPECT_EQ(checkpoint_problem(path), "");
}

TEST(Checkpoint, TruncationIsDetected) {
  const std::string dir = test::scratch_dir("ckpt_truncated");
  const std::string path = dir + "/a.ckpt";
  write_checkpoint(path, sample_contents(1));
  const std::string bytes = files::read_all(path);
  for (size_t keep : {bytes.size() - 1, bytes.size() / 2, size_t{30}, size_t{5}, size_t{0}}) {
    files::write_atomic(path, bytes.substr(0, keep));
    try {
      CheckpointFile f(path);
      FAIL() << "kept " << keep;
    } catch (const DataError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path), std::string::npos);
      EXPECT_TRUE(what.find("truncated") != std::string::npos || what.find("not a kmidi checkpoint") != std::string::npos)
          << what;
    }
  }
}

TEST(Checkpoint, CorruptionIsDetected) {
  const std::string dir = test::scratch_dir("ckpt_corrupt");
  const std::string path = dir + "/a.ckpt";
  write_checkpoint(path, sample_contents(1));
  std::string bytes = files::read_all(path);
  bytes[bytes.size() / 2] ^= 0x10;  // one bit inside a tensor
  files::write_atomic(path, bytes);
  const std::string problem = checkpoint_problem(path);
  EXPECT_NE(problem.find("corrupt checkpoint: checksum mismatch"), std::string::npos) << problem;
}

TEST(Checkpoint, NewerFormatIsRefusedWithReason) {
  const std::string dir = test::scratch_dir("ckpt_version");
  const std::string path = dir + "/a.ckpt";
  write_checkpoint(path, sample_contents(1));
  std::string bytes = files::read_all(path);
  bytes[8] = 2;
  files::write_atomic(path, bytes);
  EXPECT_NE(checkpoint_problem(path).find("format version 2 is not supported by this kmidi"), std::string::npos);
  files::write_atomic(path, "just some text that is long enough to pass the size check");
  EXPECT_NE(checkpoint_problem(path).find("not a kmidi checkpoint"), std::string::npos);
}

TEST(Checkpoint, LoadIntoModelReportsMismatches) {
  const NamedTensorList saved{{"a", torch::ones({2})}, {"b", torch::ones({3})}, {"extra", torch::ones({1})}};
  torch::Tensor a = torch::zeros({2}), b = torch::zeros({4}), c = torch::zeros({1});
  try {
    load_named_tensors(saved, {{"a", a}, {"b", b}, {"c", c}}, "ckpt: model");
    FAIL();
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("ckpt: model does not match the model"), std::string::npos) << what;
    EXPECT_NE(what.find("missing c"), std::string::npos) << what;
    EXPECT_NE(what.find("unexpected extra"), std::string::npos) << what;
    EXPECT_NE(what.find("'b' has shape [3], the model expects [4]"), std::string::npos) << what;
  }
  EXPECT_EQ(a.sum().item<float>(), 0.0f);  // nothing copied on failure
  load_named_tensors({{"a", torch::ones({2})}}, {{"a", a}}, "ckpt");
  EXPECT_EQ(a.sum().item<float>(), 2.0f);
}

TEST(CheckpointStore, KeepsLastKAndBest) {
  const std::string dir = test::scratch_dir("ckpt_store") + "/checkpoints";
  CheckpointStore store(dir, 2);
  for (int64_t step : {10, 20, 30}) store.save(step, sample_contents(step));
  store.mark_best(20);
  for (int64_t step : {40, 50}) store.save(step, sample_contents(step));
  const auto list = store.list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].first, 40);
  EXPECT_EQ(list[1].first, 50);
  EXPECT_EQ(fs::path(list[1].second).filename().string(), "step-0000000050.ckpt");
  CheckpointFile best(store.best_path());
  EXPECT_EQ(best.bytes(checkpoint_section::kMeta), "{\"step\": 20}");
  EXPECT_FALSE(fs::exists(store.step_path(20)));  // the step file is gone, best.ckpt stays
  store.mark_best(50);
  EXPECT_EQ(CheckpointFile(store.best_path()).bytes(checkpoint_section::kMeta), "{\"step\": 50}");
  store.write_artifacts({{"tokenizer.json", "{}"}});
  EXPECT_EQ(files::read_all(dir + "/tokenizer.json"), "{}");
}

TEST(CheckpointStore, LatestValidFallsBackPastCorruptAndTruncated) {
  const std::string dir = test::scratch_dir("ckpt_fallback") + "/checkpoints";
  CheckpointStore store(dir, 5);
  for (int64_t step : {1, 2, 3}) store.save(step, sample_contents(step));
  EXPECT_EQ(*store.latest_valid(), store.step_path(3));
  const std::string newest = files::read_all(store.step_path(3));
  files::write_atomic(store.step_path(3), newest.substr(0, newest.size() / 3));
  std::vector<std::string> skipped;
  EXPECT_EQ(*store.latest_valid(&skipped), store.step_path(2));
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("truncated"), std::string::npos);
  std::string second = files::read_all(store.step_path(2));
  second[100] ^= 1;
  files::write_atomic(store.step_path(2), second);
  skipped.clear();
  EXPECT_EQ(*store.latest_valid(&skipped), store.step_path(1));
  EXPECT_EQ(skipped.size(), 2u);
  EXPECT_NE(skipped[1].find("checksum mismatch"), std::string::npos);
  files::write_atomic(store.step_path(1), "x");
  EXPECT_FALSE(store.latest_valid().has_value());
}

}  // namespace
}  // namespace kmidi::train
