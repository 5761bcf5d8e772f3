// Round trips of real MIDI files from ../shared/data: every note the
// tokenizer keeps comes back at its grid-rounded onset and duration, with its
// velocity bin's value and its instrument; dropped notes are exactly the
// out-of-range ones. Expectations are computed here from the reader's notes
// with the documented rounding rules, independently of the encoder.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include "core/Errors.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/tokenizer/Tokenizer.h"

namespace kmidi::tokenizer {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> midi_files(const std::string& folder, size_t limit = 0) {
  std::vector<std::string> out;
  const fs::path root = fs::path(KMIDI_SHARED_DATA) / folder;
  if (!fs::is_directory(root)) return out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".mid" || ext == ".midi")) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  if (limit && out.size() > limit) {
    std::vector<std::string> spread;  // evenly spaced, deterministic
    for (size_t i = 0; i < limit; ++i) spread.push_back(out[i * out.size() / limit]);
    out = spread;
  }
  return out;
}

using NoteKey = std::tuple<int64_t, int, int, int, int64_t>;  // grid, pitch, instrument, velocity, steps

/// Nearest velocity value 1 + round(k * 126 / (bins - 1)); ties to the softer.
int velocity_value(int velocity, int bins) {
  int best = 1, best_distance = 1000;
  for (int k = 0; k < bins; ++k) {
    const int value = 1 + static_cast<int>(std::lround(k * 126.0 / (bins - 1)));
    if (std::abs(value - velocity) < best_distance) {
      best = value;
      best_distance = std::abs(value - velocity);
    }
  }
  return best;
}

struct Totals {
  int64_t files = 0, notes = 0, dropped = 0;
};

void round_trip(const std::vector<std::string>& files, const TokenizerConfig& config, Totals& totals,
                bool check_seconds) {
  const Tokenizer tok(config);
  const int64_t p = config.positions_per_quarter;
  const int64_t max_steps = int64_t{config.duration_max_quarters} * p;
  const int64_t ticks_per_step = config.decode_ticks_per_quarter / p;
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    midi::Score score;
    try {
      score = midi::read_midi_file(path);
    } catch (const DataError&) {
      continue;  // the reader's own tests cover files it refuses
    }
    ASSERT_FALSE(score.division.smpte);
    const int64_t tpq = score.division.ticks_per_quarter;
    std::multiset<NoteKey> expected;
    int64_t dropped = 0;
    for (const midi::Note& n : score.notes) {
      const bool drum = n.is_drum();
      const bool kept = drum ? config.drums && n.pitch >= config.drum_pitch_min && n.pitch <= config.drum_pitch_max
                             : n.pitch >= config.pitch_min && n.pitch <= config.pitch_max;
      if (!kept) { ++dropped; continue; }
      const int64_t grid = (n.start_tick * p * 2 + tpq) / (2 * tpq);
      const int64_t steps = std::clamp<int64_t>(((n.end_tick - n.start_tick) * p * 2 + tpq) / (2 * tpq), 1, max_steps);
      const int instrument = drum ? 128 : (config.program_mode == "none" ? config.decode_program : n.program);
      expected.insert({grid, n.pitch, instrument, velocity_value(n.velocity, config.velocity_bins), steps});
    }
    EncodeStats es;
    std::vector<int32_t> ids;
    try {
      tok.encode(score, ids, &es);
    } catch (const DataError& e) {
      ADD_FAILURE() << e.what();
      continue;
    }
    EXPECT_EQ(es.pitch_out_of_range + es.drums_out_of_range + es.drums_dropped, dropped);
    DecodeStats ds;
    const midi::Score decoded = tok.decode(ids, &ds);
    EXPECT_EQ(ds.invalid, 0);
    EXPECT_EQ(ds.incomplete_notes, 0);
    std::multiset<NoteKey> got;
    for (const midi::Note& n : decoded.notes) {
      got.insert({n.start_tick / ticks_per_step, n.pitch, n.is_drum() ? 128 : n.program, n.velocity,
                  (n.end_tick - n.start_tick) / ticks_per_step});
    }
    ASSERT_EQ(got.size(), expected.size());
    ASSERT_TRUE(got == expected);
    if (check_seconds && !decoded.notes.empty()) {
      // Seconds come from the decoded (binned) tempo map: within the tempo
      // bins' relative error (3.1% for 32 bins over 40..250 bpm) plus grid rounding.
      std::multiset<double> original, back;
      for (const midi::Note& n : score.notes) {
        if (n.pitch >= config.pitch_min && n.pitch <= config.pitch_max && !n.is_drum()) original.insert(n.start_s);
      }
      for (const midi::Note& n : decoded.notes) back.insert(n.start_s);
      auto a = original.begin();
      auto b = back.begin();
      for (; a != original.end() && b != back.end(); ++a, ++b) ASSERT_NEAR(*b, *a, 0.032 * *a + 0.06);
    }
    ++totals.files;
    totals.notes += static_cast<int64_t>(expected.size());
    totals.dropped += dropped;
  }
}

TokenizerConfig piano_config() {
  TokenizerConfig c;
  c.drums = false;
  c.time_signatures = false;
  c.program_mode = "none";
  return c;
}

TEST(TokenizerRealFiles, Pop909RoundTripsWithinGrid) {
  const auto files = midi_files("pop909/POP909", 200);
  ASSERT_EQ(files.size(), 200u) << "missing " << KMIDI_SHARED_DATA << "/pop909";
  Totals t;
  round_trip(files, piano_config(), t, true);
  EXPECT_EQ(t.files, 200);
  EXPECT_GT(t.notes, 200000);
}

TEST(TokenizerRealFiles, EmopiaRoundTripsWithinGrid) {
  const auto files = midi_files("emopia/EMOPIA_1.0/midis");
  ASSERT_EQ(files.size(), 1078u) << "missing " << KMIDI_SHARED_DATA << "/emopia";
  Totals t;
  round_trip(files, piano_config(), t, true);
  EXPECT_EQ(t.files, 1078);
}

TEST(TokenizerRealFiles, GrooveDrumsRoundTripWithTimeSignatures) {
  const auto files = midi_files("groove-midi/groove");
  ASSERT_EQ(files.size(), 1150u) << "missing " << KMIDI_SHARED_DATA << "/groove-midi";
  TokenizerConfig c;
  c.positions_per_quarter = 24;
  c.duration_max_quarters = 1;
  c.allowed_time_signatures = {"4/4", "3/4", "6/8", "5/4", "5/8", "2/4"};
  c.program_mode = "none";
  Totals t;
  round_trip(files, c, t, false);
  EXPECT_EQ(t.files, 1150);
  EXPECT_EQ(t.dropped, 0);  // the TD-11's notes 22..59 are all in 21..87
}

TEST(TokenizerRealFiles, MultitrackProgramsRoundTrip) {
  std::vector<std::string> files = midi_files("openttd-openmsx");
  for (const auto& f : midi_files("miditok-tests/tests/MIDIs_multitrack")) files.push_back(f);
  ASSERT_GE(files.size(), 40u);
  for (const char* mode : {"per_note", "on_change"}) {
    TokenizerConfig c;
    c.program_mode = mode;
    c.time_signature_fallback = "4/4";
    c.allowed_time_signatures.push_back("1/4");
    c.allowed_time_signatures.push_back("2/8");
    Totals t;
    round_trip(files, c, t, false);
    EXPECT_GE(t.files, 40) << mode;
  }
}

}  // namespace
}  // namespace kmidi::tokenizer
