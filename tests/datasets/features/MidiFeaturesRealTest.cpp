// midi_features on real MIDI files read by kmidi's reader, against
// tests/reference/midi_features_reference.py (mido, the same formulas written
// again in Python), including files whose tempo changes many times.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "datasets/features/MidiFeatures.h"
#include "datasets/midi/MidiReader.h"

namespace kmidi::features {
namespace {

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

nlohmann::json reference(const std::string& midi, const std::vector<std::pair<double, double>>& excerpts) {
  std::ostringstream cmd;
  cmd.precision(17);
  cmd << KMIDI_PYTHON << " " << quote(std::string(KMIDI_SOURCE_DIR) + "/tests/reference/midi_features_reference.py")
      << " " << quote(midi);
  for (const auto& [t0, t1] : excerpts) cmd << " " << t0 << " " << t1;
  FILE* pipe = ::popen(cmd.str().c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed");
  std::string out;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  const int status = ::pclose(pipe);
  if (status != 0) throw std::runtime_error("reference failed: " + cmd.str());
  return nlohmann::json::parse(out);
}

struct RealCase {
  std::string path;
  std::string why;
};

TEST(MidiFeaturesReal, MatchTheMidoReferenceOnRealFiles) {
  const std::string shared = KMIDI_SHARED_DATA;
  const std::vector<RealCase> cases = {
      {std::string(KMIDI_SOURCE_DIR) + "/data/pop909-sample/001.mid", "POP909: melody, bridge and piano tracks"},
      {shared + "/openttd-openmsx/openmsx/midnight_snow_run.mid", "65 tempo changes, 7 tracks, drums"},
      {shared + "/openttd-openmsx/openmsx/be_sharp_bw_redfarn.mid", "17 tempo changes"},
      {shared + "/mma-examples/examples/rndset/tempo.mid", "a tempo change every second"},
  };
  for (const RealCase& c : cases) {
    SCOPED_TRACE(c.path + " (" + c.why + ")");
    const midi::Score score = midi::read_midi_file(c.path);
    const double length = score.duration_seconds();
    ASSERT_GT(length, 10.0);
    // Spectocloud-sized excerpts (64 frames = 0.7314 s), longer windows across
    // tempo changes, and the whole piece; bounds avoid landing on note times.
    const std::vector<std::pair<double, double>> excerpts = {
        {0.0, 0.7314}, {length * 0.25 + 0.0123, length * 0.25 + 0.7437}, {length * 0.5 + 0.0071, length * 0.5 + 10.0071},
        {3.3333, length - 3.1111}, {0.0, length + 1.0}};
    const nlohmann::json ref = reference(c.path, excerpts);
    ASSERT_EQ(ref.at("notes").get<size_t>(), score.notes.size());
    for (size_t e = 0; e < excerpts.size(); ++e) {
      const auto [t0, t1] = excerpts[e];
      const MidiFeatures f = midi_features(score, t0, t1);
      const std::vector<double> expected = ref.at("features").at(e).get<std::vector<double>>();
      ASSERT_EQ(expected.size(), 32u);
      for (int i = 0; i < kMidiFeatureCount; ++i) {
        EXPECT_NEAR(f[static_cast<size_t>(i)], expected[static_cast<size_t>(i)], 1e-5)
            << midi_feature_names()[static_cast<size_t>(i)] << " in [" << t0 << ", " << t1 << ")";
      }
    }
  }
}

}  // namespace
}  // namespace kmidi::features
