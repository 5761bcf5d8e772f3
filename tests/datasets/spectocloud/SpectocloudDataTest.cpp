// Spectocloud data: the target cloud (hand-computed values, determinism, the
// top-energy property on a real clip), the prepared HDF5 cache checked against
// independent recomputation from the sources, song-disjoint splits, the
// Dataset's batches, and every error path.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/audio/AudioLoader.h"
#include "datasets/audio/MelSpectrogram.h"
#include "datasets/corpus/Corpus.h"
#include "datasets/features/MidiFeatures.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/spectocloud/CloudTarget.h"
#include "datasets/spectocloud/SpectocloudCache.h"
#include "datasets/spectocloud/SpectocloudDataset.h"
#include "tests/datasets/spectocloud/SpectocloudTestUtil.h"

namespace kmidi::spectocloud {
namespace {

namespace fs = std::filesystem;
using testing::parse_prepare;
using testing::small_cache;
using testing::small_prepare_yaml;

template <class F>
void expect_throw_with(F f, const std::string& substring) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one containing: " << substring;
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(substring), std::string::npos) << e.what();
  }
}

TEST(CloudTarget, HandComputedThreeByTwo) {
  // D [3 mels, 2 frames] in dB, R = 10: m0 = [0, -10], m1 = [-10, -3], m2 = [-5, -10].
  const at::Tensor db = torch::tensor({0.0, -10.0, -10.0, -3.0, -5.0, -10.0}, torch::kDouble).view({3, 2});
  const CloudTarget t = cloud_target(db, 10.0, 3, /*valence=*/1.0, /*arousal=*/-1.0);
  // Loudest three cells: (m0, t0) 0 dB, (m1, t1) -3 dB, (m2, t0) -5 dB.
  EXPECT_TRUE(torch::equal(t.cells, torch::tensor({0, 0, 1, 1, 2, 0}, torch::kLong).view({3, 2})));
  const double p03 = std::pow(10.0, -0.3), p05 = std::pow(10.0, -0.5);
  const double f0 = 1.0 + 0.1 + p05, f1 = 0.1 + p03 + 0.1;  // frame powers
  const double r0 = (0.1 + 2 * p05) / f0 / 2.0;              // centroid / (M - 1)
  const double r1 = (p03 + 0.2) / f1 / 2.0;                  // = 0.5 (symmetric frame)
  const double depth1 = (10.0 * std::log10(f1 / f0) + 10.0) / 10.0;
  const at::Tensor positions = torch::tensor({-1.0, -1.0, 1.0, 1.0, 0.0, 0.4, -1.0, 1.0, 0.0}).view({3, 3});
  const at::Tensor colors = torch::tensor({r0, 1.0, 0.0, 1.0, r1, 1.0, 0.0, 0.7, r0, 1.0, 0.0, 0.5}, torch::kDouble).view({3, 4});
  const at::Tensor properties = torch::tensor({1.0, 1.0, 1.0, 0.7, 1.0, depth1, 0.5, p05, 1.0}, torch::kDouble).view({3, 3});
  EXPECT_TRUE(torch::allclose(t.positions, positions, 0, 1e-6)) << t.positions;
  EXPECT_TRUE(torch::allclose(t.colors, colors.to(torch::kFloat), 0, 1e-6)) << t.colors;
  EXPECT_TRUE(torch::allclose(t.properties, properties.to(torch::kFloat), 0, 1e-6)) << t.properties;
  EXPECT_NEAR(r1, 0.5, 1e-12);
}

TEST(CloudTarget, TiesGoToEarlierFramesThenLowerBands) {
  const at::Tensor db = torch::full({4, 3}, -80.0, torch::kDouble);
  const CloudTarget t = cloud_target(db, 80.0, 5, 0.0, 0.0);
  // Index order t-major: (0,0) (1,0) (2,0) (3,0) (0,1).
  EXPECT_TRUE(torch::equal(t.cells, torch::tensor({0, 0, 1, 0, 2, 0, 3, 0, 0, 1}, torch::kLong).view({5, 2})));
  // Unknown emotion: green and blue at 0.5.
  EXPECT_TRUE(torch::allclose(t.colors.select(1, 1), torch::full({5}, 0.5f)));
  EXPECT_TRUE(torch::allclose(t.colors.select(1, 2), torch::full({5}, 0.5f)));
}

TEST(CloudTarget, RealClipSelectsTheLoudestCellsDeterministically) {
  audio::MelConfig mc;
  mc.normalization = "none";
  const audio::MelSpectrogram mel(mc);
  audio::AudioLoadOptions o;
  o.offset_s = 1.0;
  o.duration_s = static_cast<double>(mc.samples_for_frames(64)) / mc.sample_rate;
  const at::Tensor db = mel.from_clip(audio::load_audio(test::shared_data("librosa-audio/audio/sorohanro_-_solo-trumpet-06.hq.ogg"), o));
  ASSERT_EQ(db.sizes(), (torch::IntArrayRef{128, 64}));
  const CloudTarget a = cloud_target(db, 80.0, 1200, 0.0, 0.0);
  const CloudTarget b = cloud_target(db.clone(), 80.0, 1200, 0.0, 0.0);
  EXPECT_TRUE(torch::equal(a.positions, b.positions));
  EXPECT_TRUE(torch::equal(a.colors, b.colors));
  EXPECT_TRUE(torch::equal(a.properties, b.properties));
  ASSERT_EQ(a.positions.sizes(), (torch::IntArrayRef{1200, 3}));
  // Every selected cell is at least as loud as every cell left out, and each
  // point's position decodes to its own cell and level.
  at::Tensor selected = torch::zeros({128, 64}, torch::kBool);
  const auto cells = a.cells.accessor<int64_t, 2>();
  const auto pos = a.positions.accessor<float, 2>();
  const auto d = db.accessor<float, 2>();
  float quietest_selected = 1.0f;
  for (int64_t i = 0; i < 1200; ++i) {
    const int64_t m = cells[i][0], t = cells[i][1];
    selected[m][t] = true;
    quietest_selected = std::min(quietest_selected, d[m][t]);
    EXPECT_NEAR(pos[i][0], 2.0 * t / 63.0 - 1.0, 1e-6);
    EXPECT_NEAR(pos[i][1], 2.0 * m / 127.0 - 1.0, 1e-6);
    EXPECT_NEAR(pos[i][2], 2.0 * (d[m][t] + 80.0) / 80.0 - 1.0, 1e-5);
  }
  const float loudest_left_out = db.masked_select(selected.logical_not()).max().item<float>();
  EXPECT_GE(quietest_selected, loudest_left_out);
  EXPECT_GE(a.positions.min().item<float>(), -1.0f);
  EXPECT_LE(a.positions.max().item<float>(), 1.0f);
  for (const at::Tensor& x : {a.colors, a.properties}) {
    EXPECT_GE(x.min().item<float>(), 0.0f);
    EXPECT_LE(x.max().item<float>(), 1.0f);
  }
}

TEST(CloudTarget, RejectsUnusableInput) {
  expect_throw_with([] { cloud_target(torch::zeros({4, 2}), 80.0, 9, 0, 0); }, "9 points need at least as many cells");
  expect_throw_with([] { cloud_target(torch::full({4, 2}, 3.0), 80.0, 4, 0, 0); }, "expected dB relative to the maximum");
  expect_throw_with([] { cloud_target(torch::zeros({4, 2}), 0.0, 4, 0, 0); }, "top_db must be positive");
  expect_throw_with([] { cloud_target(torch::zeros({8}), 80.0, 4, 0, 0); }, "expected a [mels, frames] spectrogram");
}

TEST(SpectocloudPrepare, EmopiaSongIds) {
  EXPECT_EQ(emopia_song_id("Q1_0vLPYiPN7qY_0"), "0vLPYiPN7qY");
  EXPECT_EQ(emopia_song_id("Q3_4Er-eFHSHA4_12"), "4Er-eFHSHA4");
  EXPECT_EQ(emopia_song_id("Q2_a_b_c_1"), "a_b_c");
  expect_throw_with([] { emopia_song_id("001"); }, "expected Q<quadrant>_<song id>_<clip>");
}

TEST(SpectocloudPrepare, CacheMatchesIndependentRecomputation) {
  const Cache cache = read_cache(small_cache());
  const CacheItems& it = cache.items;
  ASSERT_GT(it.size(), 4);
  EXPECT_EQ(cache.header.n_mels, 128);
  EXPECT_EQ(cache.header.frames, 64);
  EXPECT_EQ(cache.header.points, 1200);
  EXPECT_EQ(cache.header.target_version, kCloudTargetVersion);
  const SpectocloudPrepareConfig config = parse_prepare(small_prepare_yaml("/unused"));
  const audio::MelSpectrogram mel(config.mel);
  audio::MelConfig db_config = config.mel;
  db_config.normalization = "none";
  const audio::MelSpectrogram db_mel(db_config);
  const int64_t samples = config.mel.samples_for_frames(64);
  const double excerpt_s = static_cast<double>(samples) / config.mel.sample_rate;
  std::set<std::string> kinds;
  for (int64_t i = 0; i < it.size(); ++i) {
    const auto s = static_cast<size_t>(i);
    SCOPED_TRACE(it.id[s]);
    const double t0 = it.offset_s[i].item<double>();
    // Spectrogram and target from the audio file, decoded again here.
    audio::AudioLoadOptions o;
    o.offset_s = t0;
    o.duration_s = excerpt_s + 0.05;
    audio::AudioClip clip = audio::load_audio(it.audio[s], o);
    clip.samples.resize(static_cast<size_t>(samples));
    EXPECT_TRUE(torch::equal(it.spectrogram[i], mel.from_clip(clip)));
    const at::Tensor emotion = it.emotion[i];
    const CloudTarget target = cloud_target(db_mel.from_clip(clip), 80.0, 1200, emotion[0].item<double>(), emotion[1].item<double>());
    EXPECT_TRUE(torch::equal(it.positions[i], target.positions));
    EXPECT_TRUE(torch::equal(it.colors[i], target.colors));
    EXPECT_TRUE(torch::equal(it.properties[i], target.properties));
    // midi_features from the MIDI of the same window, or zeros without MIDI.
    if (it.midi[s].empty()) {
      kinds.insert("audio");
      EXPECT_EQ(it.has_midi[i].item<int>(), 0);
      EXPECT_EQ(it.midi_features[i].abs().sum().item<float>(), 0.0f);
    } else {
      EXPECT_EQ(it.has_midi[i].item<int>(), 1);
      const features::MidiFeatures f = features::midi_features(midi::read_midi_file(it.midi[s]), t0, t0 + excerpt_s);
      EXPECT_TRUE(torch::equal(it.midi_features[i], torch::tensor(std::vector<float>(f.begin(), f.end()))));
      EXPECT_NEAR(it.midi_features[i].narrow(0, 0, 12).sum().item<float>(), 1.0f, 1e-5);  // pitch classes
    }
    // Emotion: EMOPIA's quadrant in the file name (Q1 +v+a, Q2 -v+a, Q3 -v-a, Q4 +v-a); zero elsewhere.
    const std::string name = fs::path(it.midi[s]).filename().string();
    if (it.id[s].rfind("emopia/", 0) == 0) {
      kinds.insert("emopia");
      const int q = name[1] - '0';
      EXPECT_EQ(it.has_emotion[i].item<int>(), 1);
      EXPECT_EQ(emotion[0].item<float>(), (q == 1 || q == 4) ? 1.0f : -1.0f);
      EXPECT_EQ(emotion[1].item<float>(), (q == 1 || q == 2) ? 1.0f : -1.0f);
      EXPECT_EQ(emotion.narrow(0, 2, 62).abs().sum().item<float>(), 0.0f);
    } else {
      if (!it.midi[s].empty()) kinds.insert("pop909");
      EXPECT_EQ(it.has_emotion[i].item<int>(), 0);
      EXPECT_EQ(emotion.abs().sum().item<float>(), 0.0f);
    }
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"audio", "emopia", "pop909"}));
}

TEST(SpectocloudPrepare, SplitsAreSongDisjointAndFollowTheHash) {
  const Cache cache = read_cache(small_cache());
  const SpectocloudPrepareConfig config = parse_prepare(small_prepare_yaml("/unused"));
  std::map<std::string, std::string> split_of_song;
  for (size_t i = 0; i < cache.items.id.size(); ++i) {
    const std::string& song = cache.items.song[i];
    EXPECT_EQ(cache.items.split[i], corpus::hash_split(song, config.split)) << song;
    const auto [it, added] = split_of_song.emplace(song, cache.items.split[i]);
    EXPECT_EQ(it->second, cache.items.split[i]) << song << " is in two splits";
  }
  EXPECT_EQ(split_of_song.size(), 4u);  // 1 POP909 song, 2 EMOPIA songs, 1 recording
  // Reading one split gives exactly its rows.
  const Cache train = read_cache(small_cache(), "train");
  for (const std::string& s : train.items.split) EXPECT_EQ(s, "train");
}

TEST(SpectocloudPrepare, PreparingAgainGivesTheSameBytesOfData) {
  const std::string dir = test::scratch_dir("spectocloud-again");
  run_spectocloud_prepare(parse_prepare(small_prepare_yaml(dir)));
  const Cache a = read_cache(small_cache()), b = read_cache(dir + "/cache.h5");
  EXPECT_EQ(a.items.id, b.items.id);
  EXPECT_TRUE(torch::equal(a.items.spectrogram, b.items.spectrogram));
  EXPECT_TRUE(torch::equal(a.items.positions, b.items.positions));
  EXPECT_TRUE(torch::equal(a.items.colors, b.items.colors));
  EXPECT_TRUE(torch::equal(a.items.properties, b.items.properties));
  EXPECT_TRUE(torch::equal(a.items.midi_features, b.items.midi_features));
}

TEST(SpectocloudDataset, BatchesAreTheCachedRowsEveryTime) {
  const SpectocloudDataset all(small_cache(), "");
  const Cache cache = read_cache(small_cache());
  ASSERT_EQ(static_cast<int64_t>(all.size()), cache.items.size());
  const std::vector<int64_t> rows{3, 0, 2};
  const data::Batch a = all.get_batch(rows), b = all.get_batch(rows);
  EXPECT_EQ(a.units, 3);
  EXPECT_EQ(a.inputs.names(), (std::vector<std::string>{"spectrogram", "emotion", "midi_features"}));
  EXPECT_EQ(a.targets.names(), (std::vector<std::string>{"positions", "colors", "properties"}));
  EXPECT_EQ(a.inputs.at("spectrogram").sizes(), (torch::IntArrayRef{3, 128, 64}));
  EXPECT_EQ(a.targets.at("colors").sizes(), (torch::IntArrayRef{3, 1200, 4}));
  for (const auto& [name, tensor] : a.targets.items()) EXPECT_TRUE(torch::equal(tensor, b.targets.at(name))) << name;
  EXPECT_TRUE(torch::equal(a.targets.at("positions")[0], cache.items.positions[3]));
  EXPECT_TRUE(torch::equal(a.inputs.at("midi_features")[1], cache.items.midi_features[0]));
  EXPECT_EQ(all.item_id(3), cache.items.id[3]);
  expect_throw_with([&] { all.get_batch({99}); }, "item 99 outside [0, ");
}

TEST(SpectocloudPrepare, MissingAndCorruptAudioFailOrAreListedSkips) {
  const std::string dir = test::scratch_dir("spectocloud-bad-audio");
  const std::string clips = dir + "/clips";
  fs::create_directories(clips);
  fs::copy_file(test::shared_data("librosa-audio/audio/sorohanro_-_solo-trumpet-06.hq.ogg"), clips + "/good.ogg");
  files::write_atomic(clips + "/corrupt.ogg", "OggS but not really an Ogg Vorbis stream");
  const std::string extra = "  - {name: clips, kind: audio, root: " + clips + ", include: ['*.ogg']}\n";
  expect_throw_with([&] { run_spectocloud_prepare(parse_prepare(small_prepare_yaml(dir + "/fail", "fail", extra))); },
                    clips + "/corrupt.ogg");
  EXPECT_FALSE(fs::exists(dir + "/fail/cache.h5"));
  const SpectocloudPrepareReport report = run_spectocloud_prepare(parse_prepare(small_prepare_yaml(dir + "/skip", "skip", extra)));
  ASSERT_EQ(report.skipped.size(), 1u);
  EXPECT_EQ(report.skipped[0].path, clips + "/corrupt.ogg");
  const Cache cache = read_cache(dir + "/skip/cache.h5");
  int good = 0;
  for (const std::string& id : cache.items.id) {
    EXPECT_EQ(id.find("corrupt"), std::string::npos);
    good += id.rfind("clips/good.ogg@", 0) == 0;
  }
  EXPECT_GT(good, 0);
  const std::string report_json = files::read_all(dir + "/skip/cache.h5.report.json");
  EXPECT_NE(report_json.find("corrupt.ogg"), std::string::npos);
}

TEST(SpectocloudPrepare, CorruptMidiFailsNamingTheFile) {
  const std::string dir = test::scratch_dir("spectocloud-bad-midi");
  files::write_atomic(dir + "/midis/broken.mid", std::string("MThd\0\0\0\6\0\1\0\1\1\xe0MTrk\0\0\0\x40", 26));
  const std::string extra = "  - {name: broken, kind: pop909, root: " + dir + "/midis, include: ['*.mid']}\n";
  expect_throw_with([&] { run_spectocloud_prepare(parse_prepare(small_prepare_yaml(dir + "/out", "fail", extra))); },
                    dir + "/midis/broken.mid");
}

TEST(SpectocloudPrepare, ConfigMistakesNameTheKey) {
  const std::string base = small_prepare_yaml("/tmp/unused");
  expect_throw_with([&] { parse_prepare(base + "points: 9000\n"); }, "needs at least as many mel cells per excerpt (8192)");
  expect_throw_with(
      [&] {
        std::string y = base;
        y.replace(y.find("method: hash"), 12, "method: manifest");
        parse_prepare(y);
      },
      "method must be hash");
  expect_throw_with(
      [&] {
        std::string y = base;
        const std::string labels = ",\n     labels: emopia/EMOPIA_1.0/label.csv";
        y.erase(y.find(labels), labels.size());
        parse_prepare(y);
      },
      "is required for kind emopia");
}

TEST(SpectocloudCache, ReadErrorsNameTheFile) {
  const std::string dir = test::scratch_dir("spectocloud-cache-errors");
  expect_throw_with([&] { read_cache(dir + "/none.h5"); }, dir + "/none.h5: spectocloud cache not found");
  files::write_atomic(dir + "/text.h5", "not hdf5");
  expect_throw_with([&] { read_cache(dir + "/text.h5"); }, dir + "/text.h5");
}

}  // namespace
}  // namespace kmidi::spectocloud
