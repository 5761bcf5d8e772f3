// Training transposition of token rows (datasets/TokenAugment.h) and its use
// by the generator's dataset: pitches move together, within the vocabulary,
// by shifts that depend on (seed, epoch, item) alone.

#include "datasets/TokenAugment.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "datasets/TokenDataset.h"
#include "datasets/shards/ShardWriter.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "tests/support/TestSupport.h"

namespace kmidi::data {
namespace {

using tokenizer::IdRange;

TEST(TokenAugment, EveryPitchMovesByTheSameShiftAndNothingElseMoves) {
  const IdRange pitch{10, 88};  // ids 10..97
  std::vector<int32_t> row{1, 4, 10, 5, 50, 6, 97 - 12, 2};
  const int applied = transpose_pitches(row.data(), row.size(), pitch, 3);
  EXPECT_EQ(applied, 3);
  EXPECT_EQ(row, (std::vector<int32_t>{1, 4, 13, 5, 53, 6, 97 - 9, 2}));
}

TEST(TokenAugment, ShiftsAreClampedSoThatNoPitchLeavesTheVocabulary) {
  const IdRange pitch{10, 88};
  std::vector<int32_t> high{10 + 80, 10 + 86};  // 1 semitone below the top
  EXPECT_EQ(transpose_pitches(high.data(), high.size(), pitch, 5), 1);
  EXPECT_EQ(high, (std::vector<int32_t>{91, 97}));
  std::vector<int32_t> low{12, 40};
  EXPECT_EQ(transpose_pitches(low.data(), low.size(), pitch, -6), -2);
  EXPECT_EQ(low, (std::vector<int32_t>{10, 38}));
  std::vector<int32_t> none{1, 4, 5};
  EXPECT_EQ(transpose_pitches(none.data(), none.size(), pitch, 4), 0);
  EXPECT_EQ(none, (std::vector<int32_t>{1, 4, 5}));
}

TEST(TokenAugment, DrawsCoverTheRangeAndDependOnSeedEpochAndItemOnly) {
  const TranspositionRange range{-3, 3};
  std::map<int, int> counts;
  for (uint64_t i = 0; i < 7000; ++i) counts[draw_transposition(range, 5, 2, i)]++;
  ASSERT_EQ(counts.size(), 7u);
  for (const auto& [shift, n] : counts) {
    EXPECT_GE(shift, -3);
    EXPECT_LE(shift, 3);
    EXPECT_NEAR(n, 1000, 150) << shift;  // uniform: sd ~ 29
  }
  EXPECT_EQ(draw_transposition(range, 5, 2, 17), draw_transposition(range, 5, 2, 17));
  std::set<int> over_epochs;
  for (int64_t e = 0; e < 20; ++e) over_epochs.insert(draw_transposition(range, 5, e, 17));
  EXPECT_GT(over_epochs.size(), 3u);
  EXPECT_EQ(draw_transposition(TranspositionRange{}, 5, 2, 17), 0);
}

TEST(TokenAugment, ConfigRangesAreChecked) {
  EXPECT_EQ(transpose_problem({}), "");
  EXPECT_EQ(transpose_problem({-5, 6}), "");
  EXPECT_NE(transpose_problem({3}), "");
  EXPECT_NE(transpose_problem({2, -2}), "");
  EXPECT_NE(transpose_problem({-13, 0}), "");
}

TEST(TokenAugment, TheDatasetTransposesTrainingRowsAsAWholeAndOnlyWhenAsked) {
  const std::filesystem::path dir = test::scratch_dir("token_augment");
  const tokenizer::Tokenizer tok{tokenizer::TokenizerConfig{}};
  tok.save((dir / "tokenizer.json").string());
  const IdRange pitch = tok.vocab().range(tokenizer::TokenKind::kPitch);
  ASSERT_GT(pitch.count, 24);
  shards::ShardWriter w((dir / "train.h5").string(), "train",
                        shards::ShardVocab{tok.vocab_size(), tok.pad_id(), tok.sha256()}, {});
  // Pieces alternating a non-pitch token and a mid-range pitch, so no shift is clamped.
  std::vector<std::vector<int32_t>> pieces;
  for (int p = 0; p < 40; ++p) {
    std::vector<int32_t> ids{tok.bos_id()};
    for (int k = 0; k < 6; ++k) ids.insert(ids.end(), {4, pitch.first + 20 + (p + k) % 40});
    ids.push_back(tok.eos_id());
    shards::ShardItem item;
    item.source = "p" + std::to_string(p) + ".mid";
    item.sha256 = std::string(64, 'a');
    w.add(ids.data(), ids.size(), item);
    pieces.push_back(ids);
  }
  w.commit();
  TokenDatasetConfig c;
  c.dir = dir.string();
  c.max_length = 64;
  c.seed = 9;
  std::vector<int64_t> all(pieces.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);

  const at::Tensor plain = TokenShardDataset(c, "train").get_batch(all).inputs.at("input_ids");
  c.transpose = {-3, 3};
  TokenShardDataset augmented(c, "train");
  augmented.set_epoch(4);
  const at::Tensor moved = augmented.get_batch(all).inputs.at("input_ids");
  const at::Tensor again = augmented.get_batch(all).inputs.at("input_ids");
  EXPECT_TRUE(at::equal(moved, again));  // same epoch, same shifts
  std::set<int64_t> shifts;
  for (size_t r = 0; r < pieces.size(); ++r) {
    const int64_t expected = draw_transposition({-3, 3}, 9, 4, r);
    shifts.insert(expected);
    for (size_t k = 0; k + 1 < pieces[r].size(); ++k) {
      const int64_t before = plain[static_cast<int64_t>(r)][static_cast<int64_t>(k)].item<int64_t>();
      const int64_t after = moved[static_cast<int64_t>(r)][static_cast<int64_t>(k)].item<int64_t>();
      EXPECT_EQ(before, pieces[r][k]);
      EXPECT_EQ(after, pitch.contains(pieces[r][k]) ? before + expected : before) << "row " << r << " token " << k;
    }
  }
  EXPECT_GE(shifts.size(), 5u);
}

}  // namespace
}  // namespace kmidi::data
