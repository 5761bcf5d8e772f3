#pragma once
// Several prepared token corpora read as one (`data.mixture`), each with a
// weight.
//
// Training (MixtureRole::kTrain): an epoch is a fixed number of draws D
// (draws_per_epoch; default: the corpora's training items together). Corpus
// c gets exactly q_c = w_c x D of them (weights normalised, largest
// remainder rounding), placed at the epoch's slots by a permutation seeded
// by (seed, epoch). Corpus c's draws read its items in passes: a seeded
// permutation of its n_c items per pass, continued across epochs (draw k of
// epoch e is position e x q_c + k of that stream), so an upweighted small
// corpus repeats its items evenly and a downweighted large one still shows
// all of them over several epochs. The mapping is a pure function of
// (seed, epoch, slot): resume and any number of ranks see the same draws.
//
// Evaluation (kEvaluate): every item of every corpus once, the corpora
// interleaved in proportion to their sizes (a prefix, as eval_max_batches
// reads, holds each corpus in proportion).
//
// Batches are the corpora's own (TokenDataset.h), padded to the longest row,
// plus the input "corpus" int64 [B]: each row's corpus index, for per-corpus
// metrics. When any corpus carries emotion labels, rows of the others get
// the neutral (zero) vector.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/Config.h"
#include "datasets/Dataset.h"

namespace kmidi::data {

class TokenShardDataset;

/// One entry of `data.mixture`.
struct MixtureCorpusConfig : config::Section {
  config::Path dir;   ///< a kmidi prepare output.dir (<split>.h5 + tokenizer.json)
  double weight = 1;  ///< > 0; weights are normalised over the list
  std::string name;   ///< in metric names ("perplexity.<name>"); default: dir's folder name
  void visit(config::Visitor& v) override;
  /// `name`, else the folder name of `dir`.
  std::string effective_name() const;
};

/// "" when the entries' effective names are unique, else what is wrong
/// ("entries 0 and 2 are both named 'pop909'; set name: on one of them").
std::string mixture_name_clash(const std::vector<MixtureCorpusConfig>& mixture);

enum class MixtureRole { kTrain, kEvaluate };

class TokenMixtureDataset : public Dataset {
 public:
  struct Corpus {
    std::string name;
    std::string dir;  ///< for error messages
    double weight = 1;
    std::shared_ptr<const TokenShardDataset> data;
  };
  /// Throws UsageError for a weight that is not positive, and DataError when
  /// two corpora were prepared with different tokenizers (naming both dirs).
  TokenMixtureDataset(std::vector<Corpus> corpora, MixtureRole role, uint64_t seed, int64_t draws_per_epoch = 0);
  ~TokenMixtureDataset() override;

  size_t size() const override { return static_cast<size_t>(size_); }
  Batch get_batch(const std::vector<int64_t>& indices) const override;
  bool has_targets() const override { return true; }
  /// "<corpus name>:<the corpus's item id>".
  std::string item_id(size_t index) const override;
  int64_t item_cost(size_t index) const override;
  /// Training: redraws the epoch's mapping and forwards the epoch to every corpus.
  void set_epoch(int64_t epoch) const override;

  size_t corpora() const { return corpora_.size(); }
  const Corpus& corpus(size_t c) const { return corpora_[c]; }
  /// Training: draws of each corpus per epoch (q_c); evaluation: its items.
  const std::vector<int64_t>& items_per_corpus() const { return per_corpus_; }
  /// The corpus and the corpus's item that mixture item `index` reads now.
  std::pair<size_t, int64_t> locate(size_t index) const;

 private:
  struct Draw {
    uint32_t corpus;
    int64_t item;
  };
  /// Training: the draws of `epoch`, slot by slot.
  std::vector<Draw> epoch_draws(int64_t epoch) const;
  /// Evaluation: every item once, the corpora interleaved.
  std::vector<Draw> evaluation_order() const;

  std::vector<Corpus> corpora_;
  MixtureRole role_;
  uint64_t seed_;
  int64_t size_ = 0;
  std::vector<int64_t> per_corpus_;
  mutable std::mutex mutex_;         // guards draws_ against set_epoch
  mutable std::vector<Draw> draws_;  // training: the current epoch's; evaluation: the order
};

}  // namespace kmidi::data
