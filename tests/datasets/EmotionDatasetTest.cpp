// Emotion clips from the real prepared EMOPIA shards: quadrant ids and
// valence/arousal signs against the clip names and EMOPIA's README, features
// against a fresh computation from the MIDI file, tokens against the shard,
// the feature cache, unlabelled folders, and bad labels.

#include "datasets/EmotionDataset.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/Csv.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "datasets/features/EmotionFeatureCache.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/shards/ShardReader.h"
#include "datasets/shards/ShardWriter.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "tests/datasets/EmopiaPrepared.h"
#include "tests/support/TestSupport.h"

namespace fs = std::filesystem;

namespace kmidi::data {
namespace {

EmotionDataConfig config_with(const std::string& inputs, const std::string& cache) {
  EmotionDataConfig c;
  c.prepared = test::emopia_prepared_dir();
  c.midi_root = test::emopia_midi_root();
  c.feature_cache = cache;
  c.inputs = inputs;
  c.max_length = 64;
  return c;
}

size_t csv_rows(const std::string& relative) { return csv::read(test::shared_data(relative)).rows.size(); }

TEST(EmotionDataset, QuadrantSignsFollowTheEmopiaReadme) {
  // README: Q1 +valence +arousal, Q2 -v +a, Q3 -v -a, Q4 +v -a.
  EXPECT_EQ(quadrant_signs(0), (std::array<float, 2>{1, 1}));
  EXPECT_EQ(quadrant_signs(1), (std::array<float, 2>{-1, 1}));
  EXPECT_EQ(quadrant_signs(2), (std::array<float, 2>{-1, -1}));
  EXPECT_EQ(quadrant_signs(3), (std::array<float, 2>{1, -1}));
  EXPECT_THROW(quadrant_signs(4), UsageError);
}

TEST(EmotionDataset, ShardClipsCarryLabelsFeaturesAndTokens) {
  const std::string cache = test::scratch_dir("emotion_clips") + "/features.cache";
  const EmotionDataConfig c = config_with("both", cache);
  bool labelled = false;
  const auto clips = load_emotion_clips(c, "test", &labelled);
  EXPECT_TRUE(labelled);
  // EMOPIA's song-disjoint split files list every clip of the split.
  EXPECT_EQ(clips.size(), csv_rows("emopia/EMOPIA_1.0/split/test_clip.csv"));
  const shards::ShardReader shard(c.prepared.str() + "/test.h5");
  ASSERT_EQ(shard.size(), static_cast<int64_t>(clips.size()));
  for (size_t i = 0; i < clips.size(); ++i) {
    const EmotionClip& clip = clips[i];
    // The quadrant is also the file name's prefix: Q<n>_<song>_<clip>.mid.
    ASSERT_EQ(clip.id.substr(0, 1), "Q");
    EXPECT_EQ(clip.quadrant, clip.id[1] - '1') << clip.id;
    EXPECT_EQ(clip.tokens, shard.read(static_cast<int64_t>(i))) << clip.id;
    if (i < 6) {
      const auto expected = features::emotion_features(midi::read_midi_file(test::emopia_midi_root() + "/" + clip.id));
      EXPECT_EQ(clip.features, expected) << clip.id;
    }
  }

  EmotionDatasetOptions o;
  o.tokens = true;
  o.features = true;
  o.max_length = 64;
  const EmotionDataset ds(clips, o);
  const Batch b = ds.get_batch({0, 1, 2});
  EXPECT_EQ(b.units, 3);
  const at::Tensor ids = b.inputs.at("input_ids"), mask = b.inputs.at("attention_mask");
  ASSERT_EQ(ids.sizes(), (at::IntArrayRef{3, 64}));  // every EMOPIA clip is longer than 64 tokens
  EXPECT_EQ(mask.scalar_type(), at::kBool);
  for (int64_t k = 0; k < 64; ++k) EXPECT_EQ(ids[1][k].item<int64_t>(), clips[1].tokens[static_cast<size_t>(k)]);
  EXPECT_EQ(b.inputs.at("features").sizes(), (at::IntArrayRef{3, 128}));
  EXPECT_EQ(b.inputs.at("features")[2][98].item<float>(), clips[2].features[98]);
  const at::Tensor q = b.targets.at("quadrant"), va = b.targets.at("valence_arousal");
  EXPECT_EQ(q.scalar_type(), at::kLong);
  for (int64_t r = 0; r < 3; ++r) {
    const int64_t quadrant = clips[static_cast<size_t>(r)].quadrant;
    EXPECT_EQ(q[r].item<int64_t>(), quadrant);
    // Valence is positive in Q1 and Q4, arousal in Q1 and Q2.
    EXPECT_EQ(va[r][0].item<float>(), quadrant == 0 || quadrant == 3 ? 1.0f : -1.0f);
    EXPECT_EQ(va[r][1].item<float>(), quadrant <= 1 ? 1.0f : -1.0f);
  }
}

TEST(EmotionDataset, SplitsAreTheSongDisjointEmopiaSplits) {
  const EmotionDataConfig c = config_with("tokens", "");
  bool labelled = false;
  EXPECT_EQ(load_emotion_clips(c, "train", &labelled).size(), csv_rows("emopia/EMOPIA_1.0/split/train_clip.csv"));
  EXPECT_EQ(load_emotion_clips(c, "validation", &labelled).size(), csv_rows("emopia/EMOPIA_1.0/split/val_clip.csv"));
}

TEST(EmotionDataset, FeatureCacheIsKeyedByFileHashAndReused) {
  const std::string cache_path = test::scratch_dir("emotion_cache") + "/features.cache";
  const EmotionDataConfig c = config_with("features", cache_path);
  bool labelled = false;
  const auto first = load_emotion_clips(c, "validation", &labelled);
  features::EmotionFeatureCache cache(cache_path);
  ASSERT_EQ(cache.size(), first.size());
  EXPECT_EQ(cache.added(), 0u);
  // Plant a different vector under clip 0's hash: a second load must read it
  // from the cache instead of recomputing it from the MIDI file.
  const std::string sha = hash::sha256_file(test::emopia_midi_root() + "/" + first[0].id);
  ASSERT_TRUE(cache.find(sha).has_value());
  EXPECT_EQ(*cache.find(sha), first[0].features);
  features::EmotionFeatures planted{};
  planted[7] = 42.0f;
  cache.insert(sha, planted);
  cache.save();
  const auto second = load_emotion_clips(c, "validation", &labelled);
  EXPECT_EQ(second[0].features, planted);
  EXPECT_EQ(second[1].features, first[1].features);

  // A truncated cache names the file; a cache of another feature layout is rebuilt.
  const std::string bytes = files::read_all(cache_path);
  files::write_atomic(cache_path, bytes.substr(0, bytes.size() - 10));
  try {
    features::EmotionFeatureCache broken(cache_path);
    FAIL() << "a truncated cache was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(cache_path + ": truncated or malformed"), std::string::npos) << e.what();
  }
  files::write_atomic(cache_path,
                      "{\"format\": \"kmidi.emotion_features\", \"format_version\": 1, \"feature_size\": 128, "
                      "\"layout_sha256\": \"old\", \"count\": 0}\n");
  EXPECT_EQ(features::EmotionFeatureCache(cache_path).size(), 0u);
  files::write_atomic(cache_path, "not a cache");
  EXPECT_THROW(features::EmotionFeatureCache{cache_path}, DataError);
}

TEST(EmotionDataset, UnlabelledFolderGivesBatchesWithoutTargets) {
  const std::string dir = test::scratch_dir("emotion_unlabelled");
  fs::create_directories(dir + "/sub dir");
  fs::copy_file(test::emopia_midi_root() + "/Q1_0vLPYiPN7qY_0.mid", dir + "/b clip.mid");
  fs::copy_file(test::emopia_midi_root() + "/Q3_0EWWyyV7RJA_0.mid", dir + "/sub dir/a.mid");
  std::ofstream(dir + "/notes.txt") << "not midi";
  const EmotionDataConfig c = config_with("both", dir + "/features.cache");
  const auto clips = load_unlabelled_clips(c, dir);
  ASSERT_EQ(clips.size(), 2u);
  EXPECT_EQ(clips[0].id, "b clip.mid");
  EXPECT_EQ(clips[1].id, "sub dir/a.mid");
  const auto tok = tokenizer::Tokenizer::load(c.prepared.str() + "/tokenizer.json");
  EXPECT_EQ(clips[1].tokens, tok.encode(midi::read_midi_file(dir + "/sub dir/a.mid")));
  EXPECT_EQ(clips[0].features, features::emotion_features(midi::read_midi_file(dir + "/b clip.mid")));
  EmotionDatasetOptions o;
  o.tokens = true;
  o.labelled = false;
  const EmotionDataset ds(clips, o);
  EXPECT_FALSE(ds.has_targets());
  const Batch b = ds.get_batch({0, 1});
  EXPECT_FALSE(b.has_targets());
  EXPECT_TRUE(b.inputs.contains("input_ids") && b.inputs.contains("features"));
  EXPECT_EQ(ds.item_id(1), "sub dir/a.mid");

  const std::string empty = test::scratch_dir("emotion_empty");
  try {
    load_unlabelled_clips(c, empty);
    FAIL() << "an empty folder was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(empty + ": no MIDI files"), std::string::npos) << e.what();
  }
}

TEST(EmotionDataset, QuadrantOutsideOneToFourIsADataErrorNamingTheClip) {
  const std::string dir = test::scratch_dir("emotion_bad_label");
  const tokenizer::Tokenizer tok{tokenizer::TokenizerConfig{}};
  tok.save(dir + "/tokenizer.json");
  shards::ShardWriter w(dir + "/train.h5", "train", shards::ShardVocab{tok.vocab_size(), tok.pad_id(), tok.sha256()},
                        {{"quadrant", shards::LabelKind::kNumber}});
  const std::vector<int32_t> ids{tok.bos_id(), 10, 11};
  shards::ShardItem item;
  item.source = "good.mid";
  item.sha256 = std::string(64, 'a');
  item.labels = {shards::LabelValue::of(2.0)};
  w.add(ids.data(), ids.size(), item);
  item.source = "bad.mid";
  item.labels = {shards::LabelValue::of(5.0)};
  w.add(ids.data(), ids.size(), item);
  w.commit();
  EmotionDataConfig c;
  c.prepared = dir;
  c.inputs = "tokens";
  bool labelled = false;
  try {
    load_emotion_clips(c, "train", &labelled);
    FAIL() << "quadrant 5 was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("train.h5: item 1 ('bad.mid') has quadrant 5; expected 1, 2, 3 or 4"),
              std::string::npos)
        << e.what();
  }
  EmotionDatasetOptions o;
  o.tokens = true;
  o.features = false;
  EmotionClip clip;
  clip.id = "x.mid";
  clip.tokens = ids;
  clip.quadrant = 4;
  try {
    EmotionDataset ds({clip}, o);
    FAIL() << "class 4 was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("clip 'x.mid' has quadrant class 4; expected 0..3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kmidi::data
