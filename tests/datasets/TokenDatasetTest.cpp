// The generator's batches over shards: next-token shift, PAD padding and
// masks, units, the emotion vector, both windowing policies, and the
// tokenizer.json/shard consistency check.

#include "datasets/TokenDataset.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <numeric>
#include <set>

#include "core/Errors.h"
#include "datasets/shards/ShardWriter.h"
#include "tests/support/TestSupport.h"

namespace kmidi::data {
namespace {

namespace fs = std::filesystem;

struct Fixture {
  fs::path dir;
  std::vector<std::vector<int32_t>> pieces;
};

/// Pieces of lengths 2, 7, 20 and 45 with ids that encode (piece, position),
/// so that any window is recognisable; piece 2 has no arousal label.
Fixture make_shards(const std::string& name, bool with_emotion, const std::string& sha_override = "") {
  Fixture f;
  f.dir = test::scratch_dir("token_dataset_" + name);
  const tokenizer::Tokenizer tok{tokenizer::TokenizerConfig{}};
  tok.save((f.dir / "tokenizer.json").string());
  std::vector<shards::LabelColumn> columns;
  if (with_emotion) columns = {{"valence", shards::LabelKind::kNumber}, {"arousal", shards::LabelKind::kNumber}};
  shards::ShardWriter w((f.dir / "train.h5").string(), "train",
                        shards::ShardVocab{tok.vocab_size(), tok.pad_id(), sha_override.empty() ? tok.sha256() : sha_override},
                        columns);
  const int lengths[] = {2, 7, 20, 45};
  for (int p = 0; p < 4; ++p) {
    std::vector<int32_t> ids;
    for (int k = 0; k < lengths[p]; ++k) ids.push_back(100 * (p + 1) + k);  // never PAD (0)
    shards::ShardItem item;
    item.source = "piece" + std::to_string(p) + ".mid";
    item.sha256 = std::string(64, 'a' + p);
    if (with_emotion) {
      item.labels = {shards::LabelValue::of(p % 2 ? -1.0 : 1.0), p == 2 ? shards::LabelValue{} : shards::LabelValue::of(0.5)};
    }
    w.add(ids.data(), ids.size(), item);
    f.pieces.push_back(ids);
  }
  w.commit();
  return f;
}

TokenDatasetConfig config_for(const Fixture& f, int64_t max_length, const std::string& windowing) {
  TokenDatasetConfig c;
  c.dir = f.dir.string();
  c.max_length = max_length;
  c.windowing = windowing;
  return c;
}

TEST(TokenDataset, WindowsCoverEveryTargetOnceWithShiftAndPadding) {
  const Fixture f = make_shards("windows", true);
  const TokenShardDataset ds(config_for(f, 8, "windows"), "train");
  // Pieces of 2 and 7 tokens fit one row of 9; 20 tokens: starts 0, 8, 16; 45: 0, 8, ..., 40.
  ASSERT_EQ(ds.size(), 2u + 3u + 6u);
  EXPECT_EQ(ds.pad_id(), 0);
  std::vector<int64_t> all(ds.size());
  std::iota(all.begin(), all.end(), 0);
  const Batch b = ds.get_batch(all);
  const at::Tensor in = b.inputs.at("input_ids");
  const at::Tensor labels = b.targets.at("labels");
  const at::Tensor mask = b.inputs.at("attention_mask");
  ASSERT_EQ(in.sizes(), (at::IntArrayRef{11, 8}));
  EXPECT_EQ(in.scalar_type(), at::kLong);
  EXPECT_EQ(labels.scalar_type(), at::kLong);
  EXPECT_EQ(mask.scalar_type(), at::kBool);
  // Every token after the first of each piece is a target exactly once.
  std::multiset<int64_t> targets;
  int64_t units = 0;
  for (int64_t r = 0; r < 11; ++r) {
    for (int64_t k = 0; k < 8; ++k) {
      const int64_t x = in[r][k].item<int64_t>(), y = labels[r][k].item<int64_t>();
      if (mask[r][k].item<bool>()) {
        EXPECT_EQ(y, x + 1) << r << "," << k;  // ids count up within a piece
        targets.insert(y);
        ++units;
      } else {
        EXPECT_EQ(x, 0);
        EXPECT_EQ(y, 0);
      }
    }
  }
  std::multiset<int64_t> expected;
  for (const auto& p : f.pieces) expected.insert(p.begin() + 1, p.end());
  EXPECT_EQ(targets, expected);
  EXPECT_EQ(b.units, units);
  EXPECT_EQ(b.units, 1 + 6 + 19 + 44);
  EXPECT_EQ(b.throughput_units, b.units);
  EXPECT_EQ(ds.item_id(3), "piece2.mid@8");
  EXPECT_EQ(ds.item_cost(4), 3);  // piece 2's last window: tokens 16..19
  // Emotion: [valence, arousal, 0, ...]; piece 2's missing arousal is 0.
  const at::Tensor e = b.inputs.at("emotion");
  ASSERT_EQ(e.sizes(), (at::IntArrayRef{11, 64}));
  EXPECT_FLOAT_EQ(e[0][0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(e[0][1].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(e[1][0].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(e[2][1].item<float>(), 0.0f);
  EXPECT_EQ(e.slice(1, 2).abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(b.inputs.names(), (std::vector<std::string>{"input_ids", "attention_mask", "emotion"}));
}

TEST(TokenDataset, BatchPadsToItsLongestRow) {
  const Fixture f = make_shards("short", false);
  const TokenShardDataset ds(config_for(f, 64, "windows"), "train");
  const Batch b = ds.get_batch({0, 1});  // 2 and 7 tokens: rows of 1 and 6 targets
  EXPECT_EQ(b.inputs.at("input_ids").sizes(), (at::IntArrayRef{2, 6}));
  EXPECT_FALSE(b.inputs.contains("emotion"));
  EXPECT_EQ(b.units, 7);
  EXPECT_EQ(b.inputs.at("attention_mask")[0].sum().item<int64_t>(), 1);
}

TEST(TokenDataset, RandomCropIsSeededPerItemAndEpoch) {
  const Fixture f = make_shards("crop", false);
  TokenShardDataset ds(config_for(f, 8, "random_crop"), "train");
  ASSERT_EQ(ds.size(), 4u);  // one item per piece
  auto starts = [&] {
    std::vector<int64_t> s;
    const Batch b = ds.get_batch({2, 3});
    for (int r = 0; r < 2; ++r) s.push_back(b.inputs.at("input_ids")[r][0].item<int64_t>() % 100);
    EXPECT_EQ(b.inputs.at("input_ids").sizes(), (at::IntArrayRef{2, 8}));
    EXPECT_EQ(b.units, 16);
    return s;
  };
  const auto epoch0 = starts();
  EXPECT_EQ(starts(), epoch0);  // same epoch, same windows
  std::set<std::vector<int64_t>> seen{epoch0};
  for (int e = 1; e < 8; ++e) {
    ds.set_epoch(e);
    const auto s = starts();
    EXPECT_LE(s[0], 20 - 9);
    EXPECT_LE(s[1], 45 - 9);
    seen.insert(s);
  }
  EXPECT_GT(seen.size(), 4u);  // windows move between epochs
  ds.set_epoch(0);
  EXPECT_EQ(starts(), epoch0);
}

TEST(TokenDataset, RefusesShardOfAnotherTokenizer) {
  const Fixture f = make_shards("mismatch", false, std::string(64, 'f'));
  try {
    TokenShardDataset ds(config_for(f, 8, "windows"), "train");
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("was written with a different tokenizer than"), std::string::npos) << e.what();
  }
  fs::remove_all(f.dir.parent_path());
}

}  // namespace
}  // namespace kmidi::data
