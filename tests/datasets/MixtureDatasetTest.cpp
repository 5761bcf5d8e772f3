// Weighted mixtures of token corpora (issue 22, point 3): draw shares follow
// the weights, exactly per epoch and binomially within any stretch of it;
// upweighted corpora repeat their items evenly and downweighted ones still
// cover theirs; the draws are a pure function of (seed, epoch); batches are
// each corpus's own rows; mismatched tokenizers and bad weights are refused.

#include "datasets/MixtureDataset.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include "core/Errors.h"
#include "datasets/TokenDataset.h"
#include "datasets/shards/ShardWriter.h"
#include "tests/support/TestSupport.h"

namespace kmidi::data {
namespace {

namespace fs = std::filesystem;

/// A prepared corpus of `pieces` pieces whose ids encode (corpus, piece, position).
fs::path make_corpus(const std::string& name, int corpus, int pieces, tokenizer::TokenizerConfig config = {}) {
  const fs::path dir = test::scratch_dir("mixture_" + name);
  const tokenizer::Tokenizer tok{config};
  tok.save((dir / "tokenizer.json").string());
  for (const char* split : {"train", "validation"}) {
    shards::ShardWriter w((dir / shards::shard_file_name(split)).string(), split,
                          shards::ShardVocab{tok.vocab_size(), tok.pad_id(), tok.sha256()}, {});
    for (int p = 0; p < pieces; ++p) {
      std::vector<int32_t> ids;
      for (int k = 0; k < 3 + p % 5; ++k) ids.push_back(100 * corpus + 10 * (p % 10) + k + 1);
      shards::ShardItem item;
      item.source = std::string(split) + "_" + std::to_string(p) + ".mid";
      item.sha256 = std::string(64, static_cast<char>('a' + p % 6));
      w.add(ids.data(), ids.size(), item);
    }
    w.commit();
  }
  return dir;
}

std::shared_ptr<TokenShardDataset> open(const fs::path& dir, const std::string& split = "train") {
  TokenDatasetConfig c;
  c.dir = dir.string();
  c.max_length = 16;
  c.windowing = "windows";
  return std::make_shared<TokenShardDataset>(c, split);
}

struct TwoCorpora {
  fs::path big = make_corpus("big", 1, 50);
  fs::path small = make_corpus("small", 2, 4);
  std::vector<TokenMixtureDataset::Corpus> corpora(double w_big, double w_small, const std::string& split = "train") const {
    return {{"big", big.string(), w_big, open(big, split)}, {"small", small.string(), w_small, open(small, split)}};
  }
};

std::map<std::pair<size_t, int64_t>, int> draws_of_epoch(const TokenMixtureDataset& m, int64_t epoch) {
  m.set_epoch(epoch);
  std::map<std::pair<size_t, int64_t>, int> count;
  for (size_t i = 0; i < m.size(); ++i) ++count[m.locate(i)];
  return count;
}

TEST(TokenMixture, DrawSharesFollowTheWeightsExactlyPerEpochAndBinomiallyWithinIt) {
  const TwoCorpora t;
  const TokenMixtureDataset m(t.corpora(7, 3), MixtureRole::kTrain, /*seed=*/11, /*draws_per_epoch=*/1000);
  ASSERT_EQ(m.size(), 1000u);
  EXPECT_EQ(m.items_per_corpus(), (std::vector<int64_t>{700, 300}));
  for (int64_t epoch : {0, 1, 5}) {
    m.set_epoch(epoch);
    int64_t from_big = 0, first_hundred = 0;
    for (size_t i = 0; i < m.size(); ++i) {
      const bool big = m.locate(i).first == 0;
      from_big += big;
      if (i < 100) first_hundred += big;
    }
    EXPECT_EQ(from_big, 700) << "epoch " << epoch;
    // The slots are shuffled: any 100 consecutive draws are Binomial(100, 0.7)
    // (sd 4.6); 4 sd either side.
    EXPECT_NEAR(static_cast<double>(first_hundred), 70.0, 4 * std::sqrt(100 * 0.7 * 0.3)) << "epoch " << epoch;
  }
}

TEST(TokenMixture, UpweightedCorporaRepeatItemsEvenlyAndDownweightedOnesCoverThemOverEpochs) {
  const TwoCorpora t;
  // 54 training items; the small corpus (4 items) gets half of 40 draws.
  const TokenMixtureDataset m(t.corpora(1, 1), MixtureRole::kTrain, 3, 40);
  const auto e0 = draws_of_epoch(m, 0);
  for (int64_t item = 0; item < 4; ++item) EXPECT_EQ(e0.at({1, item}), 5) << "small corpus item " << item;
  // The big corpus (50 items) gets 20 draws per epoch: epochs 0..4 make two
  // full passes, each item exactly twice, none missing.
  std::map<int64_t, int> big;
  for (int64_t epoch = 0; epoch < 5; ++epoch) {
    for (const auto& [key, n] : draws_of_epoch(m, epoch)) {
      if (key.first == 0) big[key.second] += n;
    }
  }
  ASSERT_EQ(big.size(), 50u);
  for (const auto& [item, n] : big) EXPECT_EQ(n, 2) << "big corpus item " << item;
}

TEST(TokenMixture, DrawsArePureFunctionsOfSeedAndEpoch) {
  const TwoCorpora t;
  const TokenMixtureDataset a(t.corpora(0.7, 0.3), MixtureRole::kTrain, 5);
  const TokenMixtureDataset b(t.corpora(0.7, 0.3), MixtureRole::kTrain, 5);
  const TokenMixtureDataset other_seed(t.corpora(0.7, 0.3), MixtureRole::kTrain, 6);
  EXPECT_EQ(a.size(), 54u);  // default: the training items together
  // b jumps straight to epoch 3 (a resumed run); a walks there.
  for (int64_t e = 0; e <= 3; ++e) a.set_epoch(e);
  b.set_epoch(3);
  other_seed.set_epoch(3);
  std::vector<std::pair<size_t, int64_t>> da, db, dc;
  for (size_t i = 0; i < a.size(); ++i) {
    da.push_back(a.locate(i));
    db.push_back(b.locate(i));
    dc.push_back(other_seed.locate(i));
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
  const auto e3 = draws_of_epoch(a, 3), e4 = draws_of_epoch(a, 4);
  EXPECT_NE(e3, e4) << "epochs must draw differently";
}

TEST(TokenMixture, BatchRowsAreTheCorporasOwnRowsWithTheirCorpusIndex) {
  const TwoCorpora t;
  const TokenMixtureDataset m(t.corpora(0.5, 0.5), MixtureRole::kTrain, 9, 20);
  std::vector<int64_t> indices(m.size());
  std::iota(indices.begin(), indices.end(), 0);
  const Batch batch = m.get_batch(indices);
  const at::Tensor ids = batch.inputs.at("input_ids");
  const at::Tensor corpus = batch.inputs.at("corpus");
  int64_t units = 0;
  for (size_t r = 0; r < indices.size(); ++r) {
    const auto [c, item] = m.locate(r);
    EXPECT_EQ(corpus[static_cast<int64_t>(r)].item<int64_t>(), static_cast<int64_t>(c));
    const Batch own = m.corpus(c).data->get_batch({item});
    const int64_t width = own.inputs.at("input_ids").size(1);
    EXPECT_TRUE(at::equal(ids[static_cast<int64_t>(r)].narrow(0, 0, width), own.inputs.at("input_ids")[0])) << r;
    EXPECT_TRUE(at::equal(batch.targets.at("labels")[static_cast<int64_t>(r)].narrow(0, 0, width), own.targets.at("labels")[0]));
    // Past the row's own width: padding, masked out.
    EXPECT_FALSE(batch.inputs.at("attention_mask")[static_cast<int64_t>(r)].narrow(0, width, ids.size(1) - width).any().item<bool>());
    units += own.units;
    // Ids encode the corpus: 1xx for big, 2xx for small.
    EXPECT_EQ(own.inputs.at("input_ids")[0][0].item<int64_t>() / 100, static_cast<int64_t>(c) + 1);
  }
  EXPECT_EQ(batch.units, units);
  EXPECT_EQ(m.item_id(0).rfind(m.corpus(m.locate(0).first).name + ":", 0), 0u) << m.item_id(0);
}

TEST(TokenMixture, EvaluationReadsEveryItemOfEveryCorpusOnceInterleaved) {
  const TwoCorpora t;
  const TokenMixtureDataset m(t.corpora(0.9, 0.1, "validation"), MixtureRole::kEvaluate, 1);
  ASSERT_EQ(m.size(), 54u);
  std::map<std::pair<size_t, int64_t>, int> seen;
  for (size_t i = 0; i < m.size(); ++i) ++seen[m.locate(i)];
  ASSERT_EQ(seen.size(), 54u);
  for (const auto& [key, n] : seen) EXPECT_EQ(n, 1);
  // The weights play no part; the first half holds half of each corpus.
  int small_in_first_half = 0;
  for (size_t i = 0; i < 27; ++i) small_in_first_half += m.locate(i).first == 1;
  EXPECT_EQ(small_in_first_half, 2);
  EXPECT_THROW(m.locate(54), UsageError);
}

TEST(TokenMixture, ATokenizerThatDiffersOrAWeightThatIsNotPositiveIsRefused) {
  const TwoCorpora t;
  tokenizer::TokenizerConfig other;
  other.velocity_bins = 16;
  const fs::path odd = make_corpus("odd_tokenizer", 3, 4, other);
  std::vector<TokenMixtureDataset::Corpus> corpora = t.corpora(1, 1);
  corpora.push_back({"odd", odd.string(), 1, open(odd)});
  try {
    TokenMixtureDataset m(corpora, MixtureRole::kTrain, 0);
    FAIL() << "a corpus with another tokenizer must be refused";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(odd.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(t.big.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("tokenizer"), std::string::npos) << msg;
  }
  try {
    TokenMixtureDataset m(t.corpora(1, 0), MixtureRole::kTrain, 0);
    FAIL() << "a zero weight must be refused";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("('small'): weight must be positive"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kmidi::data
