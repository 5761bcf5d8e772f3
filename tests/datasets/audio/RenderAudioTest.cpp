// scripts/render_audio.sh: fluidsynth renders real MIDI files to WAV that the
// audio loader reads back, with the MIDI's duration (from mido) plus a release tail.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/Errors.h"
#include "datasets/audio/AudioLoader.h"
#include "tests/datasets/audio/AudioTestUtil.h"

namespace kmidi::audio {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

Result run(const std::string& command) {
  Result r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed");
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) r.output.append(buffer, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

Result render(const std::string& args) {
  return run(quote(std::string(KMIDI_SOURCE_DIR) + "/scripts/render_audio.sh") + " " + args);
}

/// The MIDI's length in seconds according to mido (tempo map included).
double mido_length(const std::string& midi) {
  const Result r = run(std::string(KMIDI_PYTHON) + " -c " +
                       quote("import mido, sys; print(repr(mido.MidiFile(sys.argv[1]).length))") + " " + quote(midi));
  if (r.exit_code != 0) throw std::runtime_error("mido failed: " + r.output);
  return std::stod(r.output);
}

std::string mma(const std::string& name) { return std::string(KMIDI_SHARED_DATA) + "/mma-examples/examples/" + name; }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

double rms(const std::vector<float>& x) {
  double sum = 0.0;
  for (float v : x) sum += static_cast<double>(v) * v;
  return std::sqrt(sum / static_cast<double>(x.size()));
}

TEST(RenderAudio, RendersRealMidiToLoadableNonSilentWav) {
  TempDir dir("render");
  // A piano piece and one with two tempo changes.
  for (const std::string name : {"wheel/pianos", "delay/solo"}) {
    SCOPED_TRACE(name);
    const std::string midi = mma(name + ".mid");
    const Result r = render("-o " + quote(dir.path().string()) + " " + quote(midi));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string wav = dir.file(fs::path(name).filename().string() + ".wav");
    const AudioInfo info = probe_audio(wav);
    EXPECT_EQ(info.sample_rate, 44100);
    EXPECT_EQ(info.channels, 2);
    EXPECT_EQ(info.encoding, "Signed 16 bit PCM");
    const AudioClip clip = load_audio(wav);
    const double length = mido_length(midi);
    // The synth keeps sounding after the last event until the voices' release ends.
    EXPECT_GE(clip.duration, length);
    EXPECT_LE(clip.duration, length + 5.0);
    EXPECT_GT(rms(clip.samples), 0.005);
  }
}

TEST(RenderAudio, IsDeterministicSkipsExistingAndMirrorsFolders) {
  TempDir dir("render-folders");
  const fs::path in = dir.path() / "in";
  fs::create_directories(in / "sub dir");
  fs::copy_file(mma("wheel/pianos.mid"), in / "sub dir" / "Pianö 'one'.MID");
  fs::copy_file(mma("wheel/pianos.mid"), in / "two.midi");
  const std::string out_a = dir.file("a"), out_b = dir.file("b");

  Result r = render("-o " + quote(out_a) + " " + quote(in.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string first = out_a + "/sub dir/Pianö 'one'.wav";
  const std::string second = out_a + "/two.wav";
  ASSERT_TRUE(fs::exists(first)) << r.output;
  ASSERT_TRUE(fs::exists(second)) << r.output;
  EXPECT_EQ(read_bytes(first), read_bytes(second));  // same MIDI, same bytes

  // Existing outputs are kept as they are.
  fs::resize_file(second, 100);
  r = render("-o " + quote(out_a) + " " + quote(in.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rendered 0, skipped 2 existing"), std::string::npos) << r.output;
  EXPECT_EQ(fs::file_size(second), 100u);

  // A second render of the same file elsewhere is byte-identical.
  r = render("-o " + quote(out_b) + " " + quote(mma("wheel/pianos.mid")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_bytes(out_b + "/pianos.wav"), read_bytes(first));
  // -f renders again over an existing output.
  r = render("-f -o " + quote(out_a) + " " + quote(in.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_bytes(second), read_bytes(first));
}

TEST(RenderAudio, FailsLoudlyOnCorruptOrMissingInput) {
  TempDir dir("render-bad");
  // fluidsynth exits 0 on this file but prints an error; the script must not.
  const std::string corrupt =
      std::string(KMIDI_SHARED_DATA) + "/symusic-tests/tests/testcases/MIDIs_corrupted/RunTimeError_unexpected_EOF.mid";
  Result r = render("-o " + quote(dir.path().string()) + " " + quote(corrupt));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("fluidsynth failed on " + corrupt), std::string::npos) << r.output;
  EXPECT_TRUE(fs::is_empty(dir.path())) << "a failed render left files behind";

  r = render("-o " + quote(dir.path().string()) + " /nonexistent/song.mid");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/song.mid: no such file or folder"), std::string::npos) << r.output;

  r = render(quote(mma("wheel/pianos.mid")));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("missing -o OUT_DIR"), std::string::npos) << r.output;

  r = render("-o " + quote(dir.path().string()) + " -s /nonexistent.sf2 " + quote(mma("wheel/pianos.mid")));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("soundfont not found: /nonexistent.sf2"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace kmidi::audio
