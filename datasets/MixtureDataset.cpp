#include "datasets/MixtureDataset.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "core/Errors.h"
#include "core/SplitMix64.h"
#include "datasets/TokenDataset.h"

namespace fs = std::filesystem;

namespace kmidi::data {
namespace {

/// SplitMix64 with unbiased bounded draws: the same draws on every platform.
class Generator {
 public:
  explicit Generator(uint64_t seed) : state_(seed) {}
  uint64_t next() { return random::splitmix64_finalise(state_ += random::kSplitMixGolden); }
  /// Uniform in [0, bound) by rejection (no modulo bias).
  uint64_t below(uint64_t bound) {
    const uint64_t limit = ~uint64_t{0} - (~uint64_t{0} % bound);
    uint64_t x = next();
    while (x >= limit) x = next();
    return x % bound;
  }

 private:
  uint64_t state_;
};

uint64_t hash(uint64_t a, uint64_t b, uint64_t c) {
  Generator g(a ^ Generator(b ^ Generator(c).next()).next());
  return g.next();
}

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  Generator g(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(g.below(static_cast<uint64_t>(i + 1)))]);
  }
  return order;
}

constexpr uint64_t kSlotSalt = 0x4D49585455524531ull;  // "MIXTURE1"
constexpr uint64_t kPassSalt = 0x5041535345533031ull;  // "PASSES01"

/// q_c = w_c x total, rounded so that they add to `total` (largest remainder;
/// ties go to the earlier corpus).
std::vector<int64_t> quotas(const std::vector<double>& weights, int64_t total) {
  const double sum = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<int64_t> q(weights.size());
  std::vector<std::pair<double, size_t>> remainders;
  int64_t given = 0;
  for (size_t c = 0; c < weights.size(); ++c) {
    const double exact = weights[c] / sum * static_cast<double>(total);
    q[c] = static_cast<int64_t>(std::floor(exact));
    given += q[c];
    remainders.emplace_back(exact - std::floor(exact), c);
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < total; ++k, ++given) ++q[remainders[k % remainders.size()].second];
  return q;
}

bool usable_name(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
  });
}

}  // namespace

void MixtureCorpusConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("dir", dir, Spec("a prepared corpus: kmidi prepare's output.dir (<split>.h5 + tokenizer.json)").required());
  v.field("weight", weight, Spec("share of the training draws (weights are normalised over the list)").positive());
  v.field("name", name, Spec("name in per-corpus metrics (perplexity.<name>); default: dir's folder name"));
  v.check(usable_name(effective_name()), "name",
          "'" + effective_name() + "' cannot name metrics; use letters, digits, '_' and '-' (set name:)");
}

std::string MixtureCorpusConfig::effective_name() const {
  if (!name.empty()) return name;
  fs::path p(dir.str());
  if (p.filename().empty()) p = p.parent_path();  // "a/b/" names b
  return p.filename().string();
}

std::string mixture_name_clash(const std::vector<MixtureCorpusConfig>& mixture) {
  for (size_t i = 0; i < mixture.size(); ++i) {
    for (size_t j = i + 1; j < mixture.size(); ++j) {
      if (mixture[i].effective_name() == mixture[j].effective_name()) {
        return "entries " + std::to_string(i) + " and " + std::to_string(j) + " are both named '" +
               mixture[i].effective_name() + "'; set name: on one of them";
      }
    }
  }
  return "";
}

TokenMixtureDataset::TokenMixtureDataset(std::vector<Corpus> corpora, MixtureRole role, uint64_t seed,
                                         int64_t draws_per_epoch)
    : corpora_(std::move(corpora)), role_(role), seed_(seed) {
  if (corpora_.empty()) throw UsageError("a mixture needs at least one corpus");
  std::vector<double> weights;
  for (size_t c = 0; c < corpora_.size(); ++c) {
    const Corpus& k = corpora_[c];
    if (!(k.weight > 0) || !std::isfinite(k.weight)) {
      throw UsageError("mixture corpus " + std::to_string(c) + " ('" + k.name + "'): weight must be positive, got " +
                       std::to_string(k.weight));
    }
    if (k.data->tokenizer().sha256() != corpora_[0].data->tokenizer().sha256()) {
      throw DataError(k.dir + " was prepared with another tokenizer than " + corpora_[0].dir + " (tokenizer.json sha256 " +
                      k.data->tokenizer().sha256() + " vs " + corpora_[0].data->tokenizer().sha256() +
                      "); a mixture needs one tokenizer: prepare both with the same tokenizer settings");
    }
    weights.push_back(k.weight);
  }
  int64_t items = 0;
  for (const Corpus& k : corpora_) items += static_cast<int64_t>(k.data->size());
  if (role_ == MixtureRole::kEvaluate) {
    size_ = items;
    for (const Corpus& k : corpora_) per_corpus_.push_back(static_cast<int64_t>(k.data->size()));
    draws_ = evaluation_order();
    return;
  }
  for (const Corpus& k : corpora_) {
    if (k.data->size() == 0) throw DataError(k.dir + ": the corpus has no training items; drop it from the mixture");
  }
  if (draws_per_epoch < 0) throw UsageError("draws per epoch must not be negative, got " + std::to_string(draws_per_epoch));
  size_ = draws_per_epoch > 0 ? draws_per_epoch : items;
  per_corpus_ = quotas(weights, size_);
  draws_ = epoch_draws(0);
}

TokenMixtureDataset::~TokenMixtureDataset() = default;

std::vector<TokenMixtureDataset::Draw> TokenMixtureDataset::epoch_draws(int64_t epoch) const {
  const auto e = static_cast<uint64_t>(epoch);
  const std::vector<int64_t> slots = permutation(size_, hash(seed_, e, kSlotSalt));
  std::vector<Draw> draws(static_cast<size_t>(size_));
  size_t next_slot = 0;
  for (size_t c = 0; c < corpora_.size(); ++c) {
    const auto n = static_cast<int64_t>(corpora_[c].data->size());
    const int64_t q = per_corpus_[c];
    int64_t pass = -1;
    std::vector<int64_t> order;
    for (int64_t k = 0; k < q; ++k) {
      const int64_t position = epoch * q + k;  // in corpus c's stream of draws
      if (position / n != pass) {
        pass = position / n;
        order = permutation(n, hash(seed_ ^ kPassSalt, c, static_cast<uint64_t>(pass)));
      }
      draws[static_cast<size_t>(slots[next_slot++])] = Draw{static_cast<uint32_t>(c), order[static_cast<size_t>(position % n)]};
    }
  }
  return draws;
}

std::vector<TokenMixtureDataset::Draw> TokenMixtureDataset::evaluation_order() const {
  // Item j of corpus c sits at (j + 1/2) / n_c of the way: every stretch of
  // the order holds each corpus in proportion (eval_max_batches sees them all).
  std::vector<std::pair<double, Draw>> keyed;
  for (size_t c = 0; c < corpora_.size(); ++c) {
    const auto n = static_cast<int64_t>(corpora_[c].data->size());
    for (int64_t j = 0; j < n; ++j) {
      keyed.push_back({(static_cast<double>(j) + 0.5) / static_cast<double>(n), Draw{static_cast<uint32_t>(c), j}});
    }
  }
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Draw> order;
  order.reserve(keyed.size());
  for (const auto& k : keyed) order.push_back(k.second);
  return order;
}

void TokenMixtureDataset::set_epoch(int64_t epoch) const {
  for (const Corpus& k : corpora_) k.data->set_epoch(epoch);
  if (role_ != MixtureRole::kTrain) return;
  std::vector<Draw> draws = epoch_draws(epoch);
  std::lock_guard<std::mutex> lock(mutex_);
  draws_ = std::move(draws);
}

std::pair<size_t, int64_t> TokenMixtureDataset::locate(size_t index) const {
  if (index >= size()) {
    throw UsageError("item " + std::to_string(index) + " is outside the mixture of " + std::to_string(size_));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  const Draw& d = draws_[index];
  return {d.corpus, d.item};
}

std::string TokenMixtureDataset::item_id(size_t index) const {
  const auto [c, item] = locate(index);
  return corpora_[c].name + ":" + corpora_[c].data->item_id(static_cast<size_t>(item));
}

int64_t TokenMixtureDataset::item_cost(size_t index) const {
  const auto [c, item] = locate(index);
  return corpora_[c].data->item_cost(static_cast<size_t>(item));
}

Batch TokenMixtureDataset::get_batch(const std::vector<int64_t>& indices) const {
  const auto b = static_cast<int64_t>(indices.size());
  // Each corpus builds its rows; they are then placed back in request order.
  std::vector<std::vector<int64_t>> items(corpora_.size()), rows(corpora_.size());
  at::Tensor corpus = at::empty({b}, at::kLong);
  int64_t* corpus_of_row = corpus.data_ptr<int64_t>();
  for (int64_t r = 0; r < b; ++r) {
    if (indices[static_cast<size_t>(r)] < 0) {
      throw UsageError("item " + std::to_string(indices[static_cast<size_t>(r)]) + " is outside the mixture");
    }
    const auto [c, item] = locate(static_cast<size_t>(indices[static_cast<size_t>(r)]));
    items[c].push_back(item);
    rows[c].push_back(r);
    corpus_of_row[r] = static_cast<int64_t>(c);
  }
  std::vector<Batch> parts(corpora_.size());
  int64_t t = 1;
  bool emotion = false;
  for (size_t c = 0; c < corpora_.size(); ++c) {
    emotion = emotion || corpora_[c].data->has_emotion();
    if (items[c].empty()) continue;
    parts[c] = corpora_[c].data->get_batch(items[c]);
    t = std::max(t, parts[c].inputs.at("input_ids").size(1));
  }
  const int64_t pad = corpora_[0].data->pad_id();
  at::Tensor input_ids = at::full({b, t}, pad, at::kLong);
  at::Tensor labels = at::full({b, t}, pad, at::kLong);
  at::Tensor mask = at::zeros({b, t}, at::kBool);
  at::Tensor emotion_vectors = emotion ? at::zeros({b, 64}, at::kFloat) : at::Tensor();
  Batch batch;
  batch.indices = indices;
  for (size_t c = 0; c < corpora_.size(); ++c) {
    if (rows[c].empty()) continue;
    const Batch& part = parts[c];
    const at::Tensor where = at::tensor(rows[c], at::kLong);
    const int64_t width = part.inputs.at("input_ids").size(1);
    input_ids.narrow(1, 0, width).index_copy_(0, where, part.inputs.at("input_ids"));
    mask.narrow(1, 0, width).index_copy_(0, where, part.inputs.at("attention_mask"));
    labels.narrow(1, 0, width).index_copy_(0, where, part.targets.at("labels"));
    if (part.inputs.contains("emotion")) emotion_vectors.index_copy_(0, where, part.inputs.at("emotion"));
    batch.units += part.units;
    batch.throughput_units += part.throughput_units;
  }
  batch.inputs.set("input_ids", input_ids);
  batch.inputs.set("attention_mask", mask);
  if (emotion) batch.inputs.set("emotion", emotion_vectors);
  batch.inputs.set("corpus", corpus);
  batch.targets.set("labels", labels);
  return batch;
}

}  // namespace kmidi::data
