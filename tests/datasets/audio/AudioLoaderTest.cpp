#include "datasets/audio/AudioLoader.h"

#include <gtest/gtest.h>
#include <vorbis/vorbisfile.h>

#include <cmath>
#include <fstream>

#include "core/Errors.h"
#include "datasets/audio/AudioWriter.h"
#include "tests/datasets/audio/AudioTestUtil.h"

namespace kmidi::audio {
namespace {

using testing::clip_path;
using testing::real_clips;
using testing::TempDir;
using testing::trumpet_path;

/// Interleaved frames of an Ogg Vorbis file decoded by libvorbisfile, a decoder
/// path independent of libsndfile's Ogg reader.
struct VorbisDecode {
  std::vector<float> interleaved;
  int channels = 0;
  long rate = 0;
  int64_t frames = 0;
};

VorbisDecode decode_with_vorbisfile(const std::string& path) {
  OggVorbis_File vf;
  if (ov_fopen(path.c_str(), &vf) != 0) throw std::runtime_error("ov_fopen failed: " + path);
  VorbisDecode d;
  const vorbis_info* info = ov_info(&vf, -1);
  d.channels = info->channels;
  d.rate = info->rate;
  const int64_t declared = ov_pcm_total(&vf, -1);
  d.interleaved.reserve(static_cast<size_t>(declared * d.channels));
  int section = 0;
  for (;;) {
    float** pcm = nullptr;
    const long got = ov_read_float(&vf, &pcm, 4096, &section);
    if (got == 0) break;
    if (got < 0) throw std::runtime_error("ov_read_float failed: " + path);
    for (long i = 0; i < got; ++i)
      for (int c = 0; c < d.channels; ++c) d.interleaved.push_back(pcm[c][i]);
    d.frames += got;
  }
  ov_clear(&vf);
  if (d.frames != declared) throw std::runtime_error("vorbisfile length mismatch: " + path);
  return d;
}

std::string data_error_of(const std::string& path, const AudioLoadOptions& options = {}) {
  try {
    load_audio(path, options);
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(AudioLoader, DecodesEveryRealClipLikeLibvorbisfile) {
  for (const testing::RealClip& clip : real_clips()) {
    SCOPED_TRACE(clip.file);
    const std::string path = clip_path(clip.file);
    const AudioInfo info = probe_audio(path);
    EXPECT_EQ(info.sample_rate, 44100);
    EXPECT_EQ(info.channels, 2);
    EXPECT_NE(info.format.find("OGG"), std::string::npos) << info.format;
    EXPECT_NE(info.encoding.find("Vorbis"), std::string::npos) << info.encoding;

    AudioLoadOptions native;
    native.sample_rate = 0;
    const AudioClip audio = load_audio(path, native);
    const VorbisDecode ref = decode_with_vorbisfile(path);
    ASSERT_EQ(ref.channels, 2);
    EXPECT_EQ(audio.sample_rate, 44100);
    EXPECT_EQ(audio.source_rate, 44100);
    EXPECT_EQ(audio.source_channels, 2);
    EXPECT_EQ(audio.source_frames, ref.frames);
    EXPECT_EQ(info.frames, ref.frames);
    ASSERT_EQ(static_cast<int64_t>(audio.samples.size()), ref.frames);
    EXPECT_NEAR(audio.duration, clip.provenance_seconds, 0.05);
    EXPECT_DOUBLE_EQ(audio.duration, static_cast<double>(ref.frames) / 44100.0);

    double max_diff = 0.0, peak = 0.0;
    for (int64_t i = 0; i < ref.frames; ++i) {
      const double mean = (static_cast<double>(ref.interleaved[static_cast<size_t>(2 * i)]) +
                           ref.interleaved[static_cast<size_t>(2 * i + 1)]) / 2.0;
      max_diff = std::max(max_diff, std::abs(audio.samples[static_cast<size_t>(i)] - mean));
      peak = std::max(peak, std::abs(mean));
    }
    EXPECT_LE(max_diff, 1e-7);
    EXPECT_GT(peak, 0.1);  // real music, not silence
    EXPECT_LT(peak, 1.0);  // PROVENANCE: no clipping
  }
}

TEST(AudioLoader, WavAndFlacCopiesDecodeToTheOggSamples) {
  TempDir dir("audio-formats");
  const VorbisDecode ogg = decode_with_vorbisfile(trumpet_path());
  const int64_t frames = ogg.frames;

  // 32-bit float WAV holds any float: the copy decodes to the very same mono samples.
  write_audio(dir.file("float.wav"), ogg.interleaved, 2, 44100, AudioFileFormat::kWavFloat);
  AudioLoadOptions native;
  native.sample_rate = 0;
  const AudioClip from_ogg = load_audio(trumpet_path(), native);
  const AudioClip from_float = load_audio(dir.file("float.wav"), native);
  ASSERT_EQ(from_float.samples.size(), from_ogg.samples.size());
  for (size_t i = 0; i < from_ogg.samples.size(); ++i) ASSERT_EQ(from_float.samples[i], from_ogg.samples[i]) << i;
  EXPECT_EQ(probe_audio(dir.file("float.wav")).encoding, "32 bit float");

  // Integer formats: each channel sample x is stored as q = float_to_pcm(x, bits)
  // and read back as q / 2^(bits-1); the mono sample is the mean of those.
  struct Case {
    const char* name;
    AudioFileFormat format;
    int bits;
  };
  for (const Case& c : {Case{"pcm16.wav", AudioFileFormat::kWavPcm16, 16}, Case{"pcm16.flac", AudioFileFormat::kFlacPcm16, 16},
                        Case{"pcm24.flac", AudioFileFormat::kFlacPcm24, 24}}) {
    SCOPED_TRACE(c.name);
    write_audio(dir.file(c.name), ogg.interleaved, 2, 44100, c.format);
    const AudioClip clip = load_audio(dir.file(c.name), native);
    ASSERT_EQ(static_cast<int64_t>(clip.samples.size()), frames);
    EXPECT_EQ(clip.source_channels, 2);
    const double full_scale = std::ldexp(1.0, c.bits - 1);
    double max_vs_ogg = 0.0;
    for (int64_t i = 0; i < frames; ++i) {
      const float l = static_cast<float>(float_to_pcm(ogg.interleaved[static_cast<size_t>(2 * i)], c.bits) / full_scale);
      const float r = static_cast<float>(float_to_pcm(ogg.interleaved[static_cast<size_t>(2 * i + 1)], c.bits) / full_scale);
      ASSERT_EQ(clip.samples[static_cast<size_t>(i)], (l + r) * 0.5f) << "frame " << i;
      max_vs_ogg = std::max(max_vs_ogg, static_cast<double>(std::abs(clip.samples[static_cast<size_t>(i)] -
                                                                        from_ogg.samples[static_cast<size_t>(i)])));
    }
    // Rounding to the nearest step moves a sample by at most half a step.
    EXPECT_LE(max_vs_ogg, 0.5 / full_scale + 1e-7);
  }
}

TEST(AudioLoader, FloatToPcmRoundsToNearestAndClamps) {
  EXPECT_EQ(float_to_pcm(0.0f, 16), 0);
  EXPECT_EQ(float_to_pcm(0.5f, 16), 16384);
  EXPECT_EQ(float_to_pcm(-1.0f, 16), -32768);
  EXPECT_EQ(float_to_pcm(1.0f, 16), 32767);   // +1 is one step past the largest code
  EXPECT_EQ(float_to_pcm(2.5f, 16), 32767);
  EXPECT_EQ(float_to_pcm(-3.0f, 16), -32768);
  EXPECT_EQ(float_to_pcm(1.5f / 32768.0f, 16), 2);   // halves round to even
  EXPECT_EQ(float_to_pcm(2.5f / 32768.0f, 16), 2);
  EXPECT_EQ(float_to_pcm(0.25f, 24), 2097152);
}

TEST(AudioLoader, DownmixIsTheChannelMean) {
  TempDir dir("audio-downmix");
  // Stereo: L and R chosen so each mean is exact in float.
  const std::vector<float> stereo = {0.5f, -0.25f, 1.0f, 0.0f, -0.75f, -0.25f, 0.125f, 0.375f};
  write_audio(dir.file("stereo.wav"), stereo, 2, 8000, AudioFileFormat::kWavFloat);
  AudioLoadOptions native;
  native.sample_rate = 0;
  const AudioClip clip = load_audio(dir.file("stereo.wav"), native);
  EXPECT_EQ(clip.source_channels, 2);
  EXPECT_EQ(clip.sample_rate, 8000);
  EXPECT_EQ(clip.samples, (std::vector<float>{0.125f, 0.5f, -0.5f, 0.25f}));

  // Three channels, hand-computed means: (0.3 + 0.6 - 0.3) / 3 = 0.2, (-0.9 + 0 + 0) / 3 = -0.3.
  const std::vector<float> three = {0.3f, 0.6f, -0.3f, -0.9f, 0.0f, 0.0f};
  write_audio(dir.file("three.wav"), three, 3, 8000, AudioFileFormat::kWavFloat);
  const AudioClip c3 = load_audio(dir.file("three.wav"), native);
  ASSERT_EQ(c3.samples.size(), 2u);
  EXPECT_NEAR(c3.samples[0], 0.2, 1e-7);
  EXPECT_NEAR(c3.samples[1], -0.3, 1e-7);
}

TEST(AudioLoader, ExcerptsSeekToTheSameSamplesAsAFullDecode) {
  TempDir dir("audio-excerpt");
  AudioLoadOptions native;
  native.sample_rate = 0;
  const AudioClip full = load_audio(trumpet_path(), native);
  write_audio(dir.file("copy.wav"), full.samples, 1, 44100, AudioFileFormat::kWavFloat);

  for (const std::string& path : {trumpet_path(), dir.file("copy.wav")}) {
    SCOPED_TRACE(path);
    AudioLoadOptions excerpt = native;
    excerpt.offset_s = 1.25;
    excerpt.duration_s = 2.0;
    const AudioClip part = load_audio(path, excerpt);
    ASSERT_EQ(part.samples.size(), 88200u);
    EXPECT_EQ(part.source_frames, 88200);
    EXPECT_DOUBLE_EQ(part.duration, 2.0);
    const size_t start = 55125;  // 1.25 s * 44100
    double max_diff = 0.0;
    for (size_t i = 0; i < part.samples.size(); ++i) {
      max_diff = std::max(max_diff, static_cast<double>(std::abs(part.samples[i] - full.samples[start + i])));
    }
    EXPECT_EQ(max_diff, 0.0);  // libsndfile's Vorbis seek is sample-exact

    // Past the end: the excerpt stops at the last frame.
    excerpt.offset_s = 5.0;
    excerpt.duration_s = 3.0;
    const AudioClip tail = load_audio(path, excerpt);
    EXPECT_EQ(tail.samples.size(), full.samples.size() - 220500);
    EXPECT_NEAR(tail.duration, full.duration - 5.0, 1e-9);
  }
}

TEST(AudioLoader, ResamplesOnLoad) {
  AudioLoadOptions options;
  options.sample_rate = 22050;
  const AudioClip clip = load_audio(trumpet_path(), options);
  EXPECT_EQ(clip.sample_rate, 22050);
  EXPECT_EQ(clip.source_rate, 44100);
  EXPECT_EQ(clip.source_frames, 235201);
  EXPECT_EQ(clip.samples.size(), 117601u);  // round(235201 / 2), half up
  EXPECT_NEAR(clip.duration, 235201 / 44100.0, 1.0 / 22050);
}

TEST(AudioLoader, ReadsFileNamesWithSpacesQuotesAndNonAsciiLetters) {
  TempDir dir("audio-names");
  const std::string odd = dir.file("Dvořák 'Humoresque' \"7\".wav");
  write_audio(odd, testing::sine(440.0, 8000, 800), 1, 8000, AudioFileFormat::kWavPcm16);
  AudioLoadOptions native;
  native.sample_rate = 0;
  EXPECT_EQ(load_audio(odd, native).samples.size(), 800u);
}

TEST(AudioLoader, MissingFileIsADataErrorNamingIt) {
  const std::string path = "/nonexistent/kmidi/clip.ogg";
  const std::string message = data_error_of(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("no such file"), std::string::npos) << message;
  EXPECT_THROW(probe_audio(path), DataError);
}

TEST(AudioLoader, FolderEmptyAndGarbageFilesAreDataErrors) {
  TempDir dir("audio-bad");
  EXPECT_NE(data_error_of(dir.path().string()).find("it is a folder"), std::string::npos);

  write_bytes(dir.file("empty.wav"), "");
  std::string message = data_error_of(dir.file("empty.wav"));
  EXPECT_NE(message.find(dir.file("empty.wav")), std::string::npos) << message;
  EXPECT_NE(message.find("the file is empty"), std::string::npos) << message;

  // Deterministic garbage: a linear congruential byte stream.
  std::string garbage(4096, '\0');
  uint32_t state = 12345;
  for (char& ch : garbage) {
    state = state * 1664525u + 1013904223u;
    ch = static_cast<char>(state >> 24);
  }
  write_bytes(dir.file("garbage.ogg"), garbage);
  message = data_error_of(dir.file("garbage.ogg"));
  EXPECT_NE(message.find(dir.file("garbage.ogg")), std::string::npos) << message;
  EXPECT_NE(message.find("cannot decode audio"), std::string::npos) << message;

  // A valid WAV header that declares no frames: a one-frame file with its data chunk emptied.
  write_audio(dir.file("one.wav"), {0.5f}, 1, 8000, AudioFileFormat::kWavPcm16);
  std::string header = read_bytes(dir.file("one.wav"));
  ASSERT_EQ(header.size(), 46u);  // 44-byte header + one 16-bit frame
  header.resize(44);
  header[4] = 36;  // RIFF size: the 36 header bytes after "RIFF" and its size
  header[40] = header[41] = header[42] = header[43] = 0;  // data chunk size 0
  write_bytes(dir.file("header-only.wav"), header);
  message = data_error_of(dir.file("header-only.wav"));
  EXPECT_NE(message.find("no audio frames"), std::string::npos) << message;
}

TEST(AudioLoader, TruncatedFilesAreDataErrors) {
  TempDir dir("audio-truncated");
  AudioLoadOptions native;
  native.sample_rate = 0;
  const AudioClip clip = load_audio(trumpet_path(), native);
  write_audio(dir.file("full.wav"), clip.samples, 1, 44100, AudioFileFormat::kWavPcm16);
  write_audio(dir.file("full.flac"), clip.samples, 1, 44100, AudioFileFormat::kFlacPcm16);

  struct Case {
    std::string source, name, expected;
  };
  const std::vector<Case> cases = {
      {trumpet_path(), "cut.ogg", "truncated or unterminated audio stream"},
      {dir.file("full.wav"), "cut.wav", "truncated WAV file"},
      {dir.file("full.flac"), "cut.flac", "truncated or corrupt audio"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string bytes = read_bytes(c.source);
    write_bytes(dir.file(c.name), bytes.substr(0, bytes.size() * 2 / 3));
    const std::string message = data_error_of(dir.file(c.name), native);
    EXPECT_NE(message.find(dir.file(c.name)), std::string::npos) << message;
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
  }
  // Cut exactly between Ogg pages: every page is whole, but none ends the
  // stream (libsndfile 1.2.2 decodes such a file without complaint).
  const std::string ogg = read_bytes(trumpet_path());
  const size_t last_page = ogg.rfind("OggS");
  ASSERT_NE(last_page, std::string::npos);
  ASSERT_GT(last_page, 0u);
  write_bytes(dir.file("whole-pages.ogg"), ogg.substr(0, last_page));
  const std::string unterminated = data_error_of(dir.file("whole-pages.ogg"), native);
  EXPECT_NE(unterminated.find(dir.file("whole-pages.ogg")), std::string::npos) << unterminated;
  EXPECT_NE(unterminated.find("has no end-of-stream flag"), std::string::npos) << unterminated;
  // The Ogg capture pattern followed by bytes that form no page.
  write_bytes(dir.file("no-page.ogg"), std::string("OggS") + std::string(10, '\x7f'));
  const std::string no_page = data_error_of(dir.file("no-page.ogg"), native);
  EXPECT_NE(no_page.find(dir.file("no-page.ogg")), std::string::npos) << no_page;
  EXPECT_NE(no_page.find("ends inside an Ogg page"), std::string::npos) << no_page;
  // A truncated WAV is caught from its header alone.
  try {
    probe_audio(dir.file("cut.wav"));
    ADD_FAILURE() << "probe_audio accepted a truncated WAV";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("declares"), std::string::npos) << e.what();
  }
}

TEST(AudioLoader, ExcerptOutsideTheFileAndBadOptions) {
  AudioLoadOptions options;
  options.offset_s = 6.0;  // the clip is 5.33 s
  const std::string message = data_error_of(trumpet_path(), options);
  EXPECT_NE(message.find("is at or past the end of the audio"), std::string::npos) << message;
  EXPECT_NE(message.find(trumpet_path()), std::string::npos) << message;

  options = {};
  options.offset_s = -1.0;
  EXPECT_THROW(load_audio(trumpet_path(), options), UsageError);
  options = {};
  options.duration_s = 0.0;
  EXPECT_THROW(load_audio(trumpet_path(), options), UsageError);
  options = {};
  options.sample_rate = -8000;
  EXPECT_THROW(load_audio(trumpet_path(), options), UsageError);
}

}  // namespace
}  // namespace kmidi::audio
