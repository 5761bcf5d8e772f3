#include "datasets/EmotionDataset.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "datasets/corpus/FileList.h"
#include "datasets/features/EmotionFeatureCache.h"
#include "datasets/features/ScorePerturbation.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/shards/ShardReader.h"
#include "datasets/tokenizer/Tokenizer.h"

namespace fs = std::filesystem;

namespace kmidi::data {
namespace {

constexpr int64_t kQuadrants = 4;

std::unique_ptr<tokenizer::Tokenizer> load_tokenizer(const EmotionDataConfig& config) {
  const std::string path = (fs::path(config.prepared.str()) / "tokenizer.json").string();
  return std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::load(path));
}

/// The features and tokens of `score`, as its clip is loaded or augmented.
void compute_inputs(const midi::Score& score, const tokenizer::Tokenizer* tok, bool features, EmotionClip& clip,
                    const std::string& where) {
  if (tok) {
    clip.tokens = tok->encode(score);
    if (clip.tokens.empty()) throw DataError(where + ": encodes to no tokens");
  }
  if (features) clip.features = features::emotion_features(score);
}

std::string label_text(double q) {
  if (!std::isfinite(q)) return "missing";
  std::ostringstream os;
  os << q;
  return os.str();
}

}  // namespace

void EmotionDataConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("prepared", prepared, Spec("kmidi prepare's output.dir: <split>.h5 shards and tokenizer.json").required());
  v.field("midi_root", midi_root,
          Spec("folder the shards' sources are relative to (the prepare config's corpus.root); needed for features")
              .data_path());
  v.field("feature_cache", feature_cache, Spec("emotion feature cache file (default <prepared>/emotion_features.cache)"));
  v.field("inputs", inputs, Spec("what the model reads").one_of({"features", "tokens", "both"}));
  v.field("max_length", max_length, Spec("tokens per clip row (T)").min(1));
  v.field("unlabelled_test", unlabelled_test,
          Spec("MIDI folder or file WITHOUT labels used as the test split (evaluation writes predictions, skips metrics)")
              .data_path());
  v.field("splits", splits, Spec("shard names of the train, validation and test splits").size(3));
  v.section("batching", batching, Spec("training micro-batches by token budget instead of train.batch_size clips"));
  v.section("augment", augment,
            Spec("training augmentation of notation conventions, per (train.seed, epoch, clip); off by default"));
  v.field("test_perturb", test_perturb,
          Spec("perturbation spec applied to every test clip, e.g. no_pedal,velocity_flat:80 (robustness)"));
  v.field("normalise", normalise,
          Spec("perturbation spec applied to every clip of every split, last (e.g. velocity_mean:64)"));
  for (auto [key, spec] : {std::pair<const char*, const std::string*>{"test_perturb", &test_perturb},
                           std::pair<const char*, const std::string*>{"normalise", &normalise}}) {
    std::string error;
    try {
      features::parse_perturbations(*spec);
    } catch (const UsageError& e) {
      error = e.what();
    }
    v.check(error.empty(), key, error);
  }
  v.check(!uses_features() || !midi_root.empty(), "midi_root", "is required when inputs use features");
  v.check(batching.tokens_per_batch == 0 || uses_tokens(), "batching",
          "tokens_per_batch needs token inputs (inputs: tokens or both)");
  v.check(batching.tokens_per_batch == 0 || batching.tokens_per_batch >= max_length, "batching",
          "tokens_per_batch " + std::to_string(batching.tokens_per_batch) + " is smaller than max_length " +
              std::to_string(max_length) + ": a full-length clip would not fit");
}

std::string EmotionDataConfig::feature_cache_path() const {
  if (!feature_cache.empty()) return feature_cache.str();
  return (fs::path(prepared.str()) / "emotion_features.cache").string();
}

std::array<float, 2> quadrant_signs(int64_t q) {
  switch (q) {
    case 0: return {1.0f, 1.0f};
    case 1: return {-1.0f, 1.0f};
    case 2: return {-1.0f, -1.0f};
    case 3: return {1.0f, -1.0f};
    default: throw UsageError("quadrant class id " + std::to_string(q) + " is outside 0..3 (Q1..Q4)");
  }
}

EmotionDataset::EmotionDataset(std::vector<EmotionClip> clips, EmotionDatasetOptions options)
    : clips_(std::move(clips)), options_(options) {
  if (!options_.tokens && !options_.features) throw UsageError("emotion dataset: needs tokens, features or both");
  if (options_.max_length < 1) throw UsageError("emotion dataset: max_length must be positive");
  for (const EmotionClip& c : clips_) {
    if (options_.labelled && (c.quadrant < 0 || c.quadrant >= kQuadrants)) {
      throw UsageError("emotion dataset: clip '" + c.id + "' has quadrant class " + std::to_string(c.quadrant) +
                       "; expected 0..3 (Q1..Q4)");
    }
    if (options_.tokens && c.tokens.empty()) throw UsageError("emotion dataset: clip '" + c.id + "' has no tokens");
  }
  if (options_.augment.enabled() && options_.tokens && !options_.tokenizer) {
    throw UsageError("emotion dataset: augmenting token inputs needs the tokenizer");
  }
}

EmotionClip EmotionDataset::shown_clip(size_t index) const {
  const EmotionClip& clip = clips_.at(index);
  if (!clip.score || !options_.augment.enabled()) return clip;
  const std::vector<features::Perturbation> draw = features::draw_augmentation(
      options_.augment, options_.augment_seed, epoch_.load(), static_cast<int64_t>(index), clip.score->duration_seconds());
  if (draw.empty()) return clip;
  EmotionClip shown = clip;
  const midi::Score perturbed =
      features::apply_perturbations(features::apply_perturbations(*clip.score, draw), options_.normalise);
  compute_inputs(perturbed, options_.tokens ? options_.tokenizer.get() : nullptr, options_.features, shown,
                 "emotion clip '" + clip.id + "' (augmented)");
  return shown;
}

int64_t EmotionDataset::item_cost(size_t index) const {
  if (!options_.tokens) return 1;
  return std::min<int64_t>(static_cast<int64_t>(clips_.at(index).tokens.size()), options_.max_length);
}

Batch EmotionDataset::get_batch(const std::vector<int64_t>& indices) const {
  const auto b = static_cast<int64_t>(indices.size());
  for (int64_t i : indices) {
    if (i < 0 || static_cast<size_t>(i) >= clips_.size()) {
      throw UsageError("item " + std::to_string(i) + " is outside the emotion dataset of " +
                       std::to_string(clips_.size()));
    }
  }
  // Augmented clips are computed once per batch; the others are read in place.
  std::vector<EmotionClip> augmented;
  const bool augmenting = options_.augment.enabled();
  if (augmenting) {
    for (int64_t i : indices) augmented.push_back(shown_clip(static_cast<size_t>(i)));
  }
  auto clip_at = [&](int64_t r) -> const EmotionClip& {
    return augmenting ? augmented[static_cast<size_t>(r)] : clips_[static_cast<size_t>(indices[static_cast<size_t>(r)])];
  };
  Batch batch;
  batch.indices = indices;
  batch.units = b;
  batch.throughput_units = b;
  if (options_.tokens) {
    int64_t t = 1;
    for (int64_t r = 0; r < b; ++r) {
      t = std::max(t, std::min<int64_t>(static_cast<int64_t>(clip_at(r).tokens.size()), options_.max_length));
    }
    at::Tensor ids = at::full({b, t}, options_.pad_id, at::kLong);
    at::Tensor mask = at::zeros({b, t}, at::kBool);
    auto ia = ids.accessor<int64_t, 2>();
    auto ma = mask.accessor<bool, 2>();
    for (int64_t r = 0; r < b; ++r) {
      const std::vector<int32_t>& tokens = clip_at(r).tokens;
      const auto len = static_cast<int64_t>(tokens.size());
      const int64_t n = std::min(len, options_.max_length);
      for (int64_t k = 0; k < n; ++k) {
        ia[r][k] = tokens[static_cast<size_t>(k)];
        ma[r][k] = true;
      }
    }
    batch.inputs.set("input_ids", ids);
    batch.inputs.set("attention_mask", mask);
  }
  if (options_.features) {
    at::Tensor f = at::empty({b, static_cast<int64_t>(features::kEmotionFeatureSize)}, at::kFloat);
    auto fa = f.accessor<float, 2>();
    for (int64_t r = 0; r < b; ++r) {
      const auto& values = clip_at(r).features;
      for (size_t k = 0; k < values.size(); ++k) fa[r][static_cast<int64_t>(k)] = values[k];
    }
    batch.inputs.set("features", f);
  }
  if (options_.labelled) {
    at::Tensor q = at::empty({b}, at::kLong);
    at::Tensor va = at::empty({b, 2}, at::kFloat);
    auto qa = q.accessor<int64_t, 1>();
    auto vaa = va.accessor<float, 2>();
    for (int64_t r = 0; r < b; ++r) {
      const int64_t quadrant = clips_[static_cast<size_t>(indices[static_cast<size_t>(r)])].quadrant;
      const auto signs = quadrant_signs(quadrant);
      qa[r] = quadrant;
      vaa[r][0] = signs[0];
      vaa[r][1] = signs[1];
    }
    batch.targets.set("quadrant", q);
    batch.targets.set("valence_arousal", va);
  }
  return batch;
}

std::vector<EmotionClip> load_emotion_clips(const EmotionDataConfig& config, const std::string& split_name,
                                            bool* labelled, const ClipLoading& loading) {
  const shards::ShardReader shard((fs::path(config.prepared.str()) / shards::shard_file_name(split_name)).string());
  std::unique_ptr<tokenizer::Tokenizer> tok;
  const bool rewrite = !loading.perturb.empty() || !loading.normalise.empty();
  const bool parse = rewrite || loading.keep_scores;
  if (parse && config.midi_root.empty()) {
    throw UsageError("data.midi_root: is required to perturb or augment clips (their MIDI files are read)");
  }
  if (config.uses_tokens()) {
    tok = load_tokenizer(config);
    if (shard.tokenizer_sha256() != tok->sha256()) {
      throw DataError(shard.path() + ": was written with a different tokenizer than the tokenizer.json beside it (sha256 " +
                      shard.tokenizer_sha256() + " vs " + tok->sha256() + "); re-run kmidi prepare");
    }
  }
  const int quadrant_column = shard.label_index("quadrant");
  if (quadrant_column >= 0 && shard.label_columns()[static_cast<size_t>(quadrant_column)].kind != shards::LabelKind::kNumber) {
    throw DataError(shard.path() + ": label 'quadrant' must be numeric (1..4)");
  }
  if (labelled) *labelled = quadrant_column >= 0;
  std::unique_ptr<features::EmotionFeatureCache> cache;
  if (config.uses_features()) cache = std::make_unique<features::EmotionFeatureCache>(config.feature_cache_path());

  std::vector<EmotionClip> clips;
  clips.reserve(static_cast<size_t>(shard.size()));
  for (int64_t i = 0; i < shard.size(); ++i) {
    const shards::ShardItem& item = shard.item(i);
    EmotionClip clip;
    clip.id = item.source;
    if (quadrant_column >= 0) {
      const double q = item.labels[static_cast<size_t>(quadrant_column)].number;
      if (!std::isfinite(q) || q != std::floor(q) || q < 1 || q > 4) {
        throw DataError(shard.path() + ": item " + std::to_string(i) + " ('" + item.source + "') has quadrant " +
                        label_text(q) + "; expected 1, 2, 3 or 4");
      }
      clip.quadrant = static_cast<int64_t>(q) - 1;
    }
    const std::string file = parse || cache ? (fs::path(config.midi_root.str()) / item.source).string() : "";
    if (rewrite) {
      const midi::Score score = midi::read_midi_file(file);
      const midi::Score perturbed =
          features::apply_perturbations(features::apply_perturbations(score, loading.perturb), loading.normalise);
      compute_inputs(perturbed, tok.get(), config.uses_features(), clip, file + " (perturbed)");
      if (loading.keep_scores) clip.score = std::make_shared<const midi::Score>(score);
      clips.push_back(std::move(clip));
      continue;
    }
    if (config.uses_tokens()) clip.tokens = shard.read(i);
    if (cache) clip.features = cache->get_or_compute(file, item.sha256);
    if (loading.keep_scores) clip.score = std::make_shared<const midi::Score>(midi::read_midi_file(file));
    clips.push_back(std::move(clip));
  }
  if (cache && cache->added() > 0) {
    spdlog::info("emotion features: computed {} of {} clips of {}, cached in {}", cache->added(), clips.size(),
                 split_name, cache->path());
    cache->save();
  }
  return clips;
}

std::vector<EmotionClip> load_unlabelled_clips(const EmotionDataConfig& config, const std::string& path,
                                               const ClipLoading& loading) {
  std::vector<std::string> files;
  std::string root = path;
  if (fs::is_regular_file(path)) {
    root = fs::path(path).parent_path().string();
    files.push_back(fs::path(path).filename().string());
  } else {
    files = corpus::list_files(path, {"**/*.mid", "**/*.midi"}, {});  // any depth, any case
  }
  if (files.empty()) throw DataError(path + ": no MIDI files (*.mid, *.midi) found");
  std::unique_ptr<tokenizer::Tokenizer> tok;
  if (config.uses_tokens()) tok = load_tokenizer(config);
  std::unique_ptr<features::EmotionFeatureCache> cache;
  if (config.uses_features()) cache = std::make_unique<features::EmotionFeatureCache>(config.feature_cache_path());
  std::vector<EmotionClip> clips;
  for (const std::string& relative : files) {
    const std::string file = (fs::path(root) / relative).string();
    const std::string bytes = files::read_all(file);
    const std::string sha = hash::sha256_hex(bytes);
    EmotionClip clip;
    clip.id = relative;
    if (!loading.perturb.empty() || !loading.normalise.empty() || loading.keep_scores) {
      const midi::Score score = midi::read_midi_bytes(bytes, file);
      compute_inputs(features::apply_perturbations(features::apply_perturbations(score, loading.perturb),
                                                   loading.normalise),
                     tok.get(), config.uses_features(), clip, file);
      if (loading.keep_scores) clip.score = std::make_shared<const midi::Score>(score);
      clips.push_back(std::move(clip));
      continue;
    }
    std::optional<features::EmotionFeatures> cached = cache ? cache->find(sha) : std::nullopt;
    if (tok || (cache && !cached)) {
      const midi::Score score = midi::read_midi_bytes(bytes, file);
      if (tok) {
        clip.tokens = tok->encode(score);
        if (clip.tokens.empty()) throw DataError(file + ": encodes to no tokens");
      }
      if (cache && !cached) {
        cached = features::emotion_features(score);
        cache->insert(sha, *cached);
      }
    }
    if (cached) clip.features = *cached;
    clips.push_back(std::move(clip));
  }
  if (cache) cache->save();
  return clips;
}

}  // namespace kmidi::data
