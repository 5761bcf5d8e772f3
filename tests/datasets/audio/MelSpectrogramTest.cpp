#include "datasets/audio/MelSpectrogram.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/Config.h"
#include "core/Errors.h"
#include "tests/datasets/audio/AudioTestUtil.h"

namespace kmidi::audio {
namespace {

using testing::clip_path;
using testing::TempDir;

/// What tests/reference/mel_reference.py computed for one clip.
struct Reference {
  int64_t n_mels = 0, frames = 0;
  torch::Tensor filterbank, mel, db, out;  // float64
};

std::string run_command(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  if (status != 0) throw std::runtime_error("command failed (" + std::to_string(status) + "): " + command);
  return output;
}

torch::Tensor read_f64(const std::string& path, std::vector<int64_t> shape) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const torch::Tensor t = torch::empty(shape, torch::kFloat64);
  if (bytes.size() != static_cast<size_t>(t.numel()) * sizeof(double)) throw std::runtime_error("size mismatch: " + path);
  std::memcpy(t.data_ptr<double>(), bytes.data(), bytes.size());
  return t;
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

Reference numpy_reference(const std::vector<float>& samples, const MelConfig& c, const TempDir& dir) {
  const std::string input = dir.file("samples.f32");
  {
    std::ofstream out(input, std::ios::binary);
    out.write(reinterpret_cast<const char*>(samples.data()), static_cast<std::streamsize>(samples.size() * sizeof(float)));
  }
  std::ostringstream cmd;
  cmd.precision(17);
  cmd << KMIDI_PYTHON << " " << quote(std::string(KMIDI_SOURCE_DIR) + "/tests/reference/mel_reference.py")
      << " --input " << quote(input) << " --output-prefix " << quote(dir.file("ref")) << " --sample-rate " << c.sample_rate
      << " --n-fft " << c.n_fft << " --hop-length " << c.hop_length << " --win-length " << c.win_length
      << " --center " << (c.center ? 1 : 0) << " --pad-mode " << c.pad_mode << " --n-mels " << c.n_mels
      << " --fmin " << c.fmin << " --fmax " << c.fmax << " --power " << c.power << " --mel-scale " << c.mel_scale
      << " --mel-norm " << c.mel_norm << " --to-db " << (c.to_db ? 1 : 0) << " --db-ref " << c.db_ref
      << " --amin " << c.amin << " --top-db " << c.top_db << " --normalization " << c.normalization;
  const nlohmann::json shape = nlohmann::json::parse(run_command(cmd.str()));
  Reference r;
  r.n_mels = shape.at("n_mels").get<int64_t>();
  r.frames = shape.at("frames").get<int64_t>();
  r.filterbank = read_f64(dir.file("ref.fb.f64"), {r.n_mels, c.n_fft / 2 + 1});
  r.mel = read_f64(dir.file("ref.mel.f64"), {r.n_mels, r.frames});
  r.db = read_f64(dir.file("ref.db.f64"), {r.n_mels, r.frames});
  r.out = read_f64(dir.file("ref.out.f64"), {r.n_mels, r.frames});
  return r;
}

AudioClip excerpt(const std::string& file, double offset_s, double duration_s, int rate) {
  AudioLoadOptions o;
  o.sample_rate = rate;
  o.offset_s = offset_s;
  o.duration_s = duration_s;
  return load_audio(clip_path(file), o);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

MelConfig with(MelConfig c, const std::function<void(MelConfig&)>& change) {
  change(c);
  return c;
}

struct ParityCase {
  std::string file;
  double offset_s, duration_s;
};

const std::vector<ParityCase>& parity_clips() {
  static const std::vector<ParityCase> clips = {
      {"Kevin_MacLeod_-_Vibe_Ace.hq.ogg", 10.0, 4.0},
      {"Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).hq.ogg", 5.0, 4.0},
      {"admiralbob77_-_Choice_-_Drum-bass.hq.ogg", 2.0, 3.0},
  };
  return clips;
}

TEST(MelSpectrogram, MatchesNumpyReferenceOnRealClipsWithin1e4Db) {
  TempDir dir("mel-parity");
  const MelConfig config;  // the CONTRACTS defaults: 44.1 kHz, 2048/512, 128 slaney mels, dB, standardised
  const MelSpectrogram mel(config);
  for (const ParityCase& p : parity_clips()) {
    SCOPED_TRACE(p.file);
    const AudioClip clip = excerpt(p.file, p.offset_s, p.duration_s, config.sample_rate);
    const Reference ref = numpy_reference(clip.samples, config, dir);
    EXPECT_EQ(ref.frames, config.frames_for_samples(static_cast<int64_t>(clip.samples.size())));

    // The final output (standardised dB) ...
    const torch::Tensor out = mel.from_clip(clip);
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{128, ref.frames}));
    EXPECT_EQ(out.scalar_type(), torch::kFloat32);
    const double out_diff = max_abs_diff(out, ref.out);
    EXPECT_LT(out_diff, 1e-6);

    // ... and the dB stage itself, the 1e-4 dB criterion.
    const MelSpectrogram db_only(with(config, [](MelConfig& c) { c.normalization = "none"; }));
    const double db_diff = max_abs_diff(db_only.from_clip(clip), ref.db);
    EXPECT_LT(db_diff, 1e-4);
    // Mel power before dB, relative to the clip's maximum.
    const MelSpectrogram power_only(with(config, [](MelConfig& c) {
      c.to_db = false;
      c.normalization = "none";
    }));
    const double power_diff = max_abs_diff(power_only.from_clip(clip), ref.mel) / ref.mel.max().item<double>();
    EXPECT_LT(power_diff, 1e-6);
    std::printf("[ parity ] %s: max |dB diff| %.3g, max |standardised diff| %.3g, max mel power diff / max %.3g\n",
                p.file.c_str(), db_diff, out_diff, power_diff);
  }
}

TEST(MelSpectrogram, Float32ArithmeticStaysCloseToTheReference) {
  TempDir dir("mel-parity32");
  const MelConfig config = with(MelConfig{}, [](MelConfig& c) {
    c.precision = "float32";
    c.normalization = "none";
  });
  const MelSpectrogram mel(config);
  for (const ParityCase& p : parity_clips()) {
    SCOPED_TRACE(p.file);
    const AudioClip clip = excerpt(p.file, p.offset_s, p.duration_s, config.sample_rate);
    const Reference ref = numpy_reference(clip.samples, config, dir);
    const double db_diff = max_abs_diff(mel.from_clip(clip), ref.db);
    EXPECT_LT(db_diff, 1e-3);  // observed 1e-4..3e-4 dB; float64 (the default) gives 4e-6
    std::printf("[ parity ] float32 %s: max |dB diff| %.3g\n", p.file.c_str(), db_diff);
  }
}

TEST(MelSpectrogram, OtherSettingsMatchTheReferenceToo) {
  // HTK mels without normalisation, magnitude, ref 1, no top_db, constant
  // padding, a shorter window and a band limit, at 22.05 kHz.
  TempDir dir("mel-variant");
  MelConfig config;
  config.sample_rate = 22050;
  config.n_fft = 1024;
  config.hop_length = 256;
  config.win_length = 800;
  config.pad_mode = "constant";
  config.n_mels = 64;
  config.fmin = 30.0;
  config.fmax = 8000.0;
  config.power = 1.0;
  config.mel_scale = "htk";
  config.mel_norm = "none";
  config.db_ref = "one";
  config.top_db = 0.0;
  config.normalization = "none";
  const AudioClip clip = excerpt(parity_clips()[0].file, 20.0, 3.0, 22050);
  const Reference ref = numpy_reference(clip.samples, config, dir);
  const MelSpectrogram mel(config);
  EXPECT_LT(max_abs_diff(mel.filterbank(), ref.filterbank), 1e-12);
  const torch::Tensor out = mel.from_clip(clip);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{64, ref.frames}));
  EXPECT_LT(max_abs_diff(out, ref.db), 1e-4);

  config.center = false;  // frames start at sample 0, no padding
  const Reference uncentred = numpy_reference(clip.samples, config, dir);
  EXPECT_EQ(uncentred.frames, 1 + (static_cast<int64_t>(clip.samples.size()) - 1024) / 256);
  EXPECT_LT(max_abs_diff(MelSpectrogram(config).from_clip(clip), uncentred.db), 1e-4);
}

TEST(MelSpectrogram, FilterbankMatchesTheReference) {
  TempDir dir("mel-fb");
  const MelConfig config;
  const Reference ref = numpy_reference(testing::sine(440.0, 44100, 4096), config, dir);
  const MelSpectrogram mel(config);
  ASSERT_EQ(mel.filterbank().sizes(), (std::vector<int64_t>{128, 1025}));
  EXPECT_LT(max_abs_diff(mel.filterbank(), ref.filterbank) / ref.filterbank.max().item<double>(), 1e-12);
}

TEST(MelSpectrogram, SineToneLandsInTheBandCentredOnIt) {
  MelConfig config;
  config.normalization = "none";
  const MelSpectrogram mel(config);
  const std::vector<float> tone = testing::sine(1000.0, 44100, 44100);
  const torch::Tensor spec = mel(torch::from_blob(const_cast<float*>(tone.data()), {44100}, torch::kFloat32));
  const int64_t loudest = spec.mean(1).argmax().item<int64_t>();
  // 1000 Hz is 15 slaney mels; band i is centred at (i + 1) * mel(22050) / 129,
  // mel(22050) = 15 + 27 ln(22.05) / ln(6.4).
  const double top = 15.0 + 27.0 * std::log(22.05) / std::log(6.4);
  EXPECT_EQ(loudest, std::lround(15.0 / (top / 129.0)) - 1);
  EXPECT_NEAR(spec.max().item<float>(), 0.0f, 1e-4);  // ref = max: the peak is 0 dB
  EXPECT_NEAR(spec.min().item<float>(), -80.0f, 1e-4);  // top_db floor
}

TEST(MelSpectrogram, BatchRowsEqualSingleClips) {
  const MelSpectrogram mel{MelConfig{}};
  MelConfig c;
  const int64_t samples = c.samples_for_frames(64);
  EXPECT_EQ(samples, 32256);  // 63 hops of 512: 64 frames, 0.73 s
  EXPECT_EQ(c.frames_for_samples(samples), 64);
  EXPECT_EQ(c.frames_for_samples(samples - 1), 63);
  const AudioClip clip = excerpt(parity_clips()[1].file, 1.0, 2.0, 44100);
  const torch::Tensor all = torch::from_blob(const_cast<float*>(clip.samples.data()),
                                             {static_cast<int64_t>(clip.samples.size())}, torch::kFloat32);
  const torch::Tensor batch = torch::stack({all.narrow(0, 0, samples), all.narrow(0, 40000, samples)});
  const torch::Tensor out = mel(batch);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 128, 64}));
  EXPECT_TRUE(torch::equal(out[0], mel(batch[0])));
  EXPECT_TRUE(torch::equal(out[1], mel(batch[1])));
  // Per-clip standardisation: each row has mean 0 and std 1.
  for (int i = 0; i < 2; ++i) {
    EXPECT_NEAR(out[i].mean().item<double>(), 0.0, 1e-5);
    EXPECT_NEAR(out[i].std(/*unbiased=*/false).item<double>(), 1.0, 1e-5);
  }
}

TEST(MelSpectrogram, SilenceGivesFiniteZeros) {
  const MelSpectrogram mel{MelConfig{}};
  const torch::Tensor out = mel(torch::zeros({8192}));
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  EXPECT_EQ(out.abs().max().item<float>(), 0.0f);
}

TEST(MelSpectrogram, RejectsShortClipsWrongRatesAndShapes) {
  const MelSpectrogram mel{MelConfig{}};
  try {
    mel(torch::zeros({1024}));
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("1024 samples is too short for n_fft 2048"), std::string::npos) << e.what();
  }
  EXPECT_THROW(mel(torch::zeros({2, 2, 4096})), UsageError);
  AudioClip clip;
  clip.sample_rate = 22050;
  clip.samples.assign(4096, 0.0f);
  try {
    mel.from_clip(clip);
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("clip is at 22050 Hz; the config expects 44100 Hz"), std::string::npos);
  }
  MelConfig empty_bands;
  empty_bands.sample_rate = 16000;
  empty_bands.n_fft = 256;
  EXPECT_THROW(MelSpectrogram{empty_bands}, UsageError);
}

TEST(MelSpectrogram, ConfigReadsFromYamlAndChecksRanges) {
  MelConfig c;
  config::Document::load_string("n_mels: 64\nhop_length: 256\nnormalization: none\n", "mel.yaml", "/").read_into(c);
  EXPECT_EQ(c.n_mels, 64);
  EXPECT_EQ(c.hop_length, 256);
  EXPECT_EQ(c.normalization, "none");
  EXPECT_EQ(c.n_fft, 2048);

  const auto error_of = [](const std::string& yaml) {
    MelConfig m;
    try {
      config::Document::load_string(yaml, "mel.yaml", "/").read_into(m);
    } catch (const config::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of("fmax: 30000\n").find("fmax: must not exceed sample_rate / 2"), std::string::npos)
      << error_of("fmax: 30000\n");
  EXPECT_NE(error_of("win_length: 4096\n").find("win_length"), std::string::npos);
  EXPECT_NE(error_of("normalization: minmax\n").find("normalization"), std::string::npos);
}

}  // namespace
}  // namespace kmidi::audio
