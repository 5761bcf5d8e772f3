#include "datasets/groove/DrumGrid.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace kmidi::groove {
namespace {

// General MIDI percussion grouped into the nine classes of the Groove MIDI
// Dataset's humanize experiments.
constexpr std::array<std::initializer_list<int>, kDrumClasses> kClassPitches = {{
    {35, 36},                                                  // kick
    {27, 28, 31, 32, 33, 34, 37, 38, 39, 40, 56, 65, 66, 75, 85},  // snare and rim
    {22, 42, 44, 54, 68, 69, 70, 71, 73, 78, 80},              // closed hi-hat
    {26, 46, 67, 72, 74, 79, 81},                              // open hi-hat
    {29, 41, 43, 45, 61, 64, 84},                              // low tom
    {47, 48, 60, 63, 77, 86, 87},                              // mid tom
    {30, 50, 62, 76, 83},                                      // high tom
    {49, 52, 55, 57, 58},                                      // crash
    {51, 53, 59, 82},                                          // ride
}};

std::array<int, 128> build_pitch_table() {
  std::array<int, 128> table;
  table.fill(-1);
  for (int c = 0; c < kDrumClasses; ++c) {
    for (int pitch : kClassPitches[c]) table[pitch] = c;
  }
  return table;
}

}  // namespace

const std::array<const char*, kDrumClasses>& drum_class_names() {
  static const std::array<const char*, kDrumClasses> names = {
      "kick", "snare", "closed_hihat", "open_hihat", "low_tom", "mid_tom", "high_tom", "crash", "ride"};
  return names;
}

int drum_class(int pitch) {
  static const std::array<int, 128> table = build_pitch_table();
  return pitch >= 0 && pitch < 128 ? table[static_cast<size_t>(pitch)] : -1;
}

int64_t grid_tick(const midi::Score& score, int64_t step) {
  if (score.division.smpte) {
    // No musical clock: steps follow the 120 bpm assumption of Score::beats_at.
    return score.tick_at_seconds(static_cast<double>(step) * 0.125);
  }
  return step * score.division.ticks_per_quarter / kStepsPerQuarter;
}

int class_pitch(int c) {
  static constexpr std::array<int, kDrumClasses> pitches = {36, 38, 42, 46, 45, 48, 50, 49, 51};
  return pitches.at(static_cast<size_t>(c));
}

DrumGrid quantize_drums(const midi::Score& score) {
  DrumGrid grid;
  std::map<std::pair<int64_t, int>, Hit> best;  // (step, class) → loudest hit
  for (size_t i = 0; i < score.notes.size(); ++i) {
    const midi::Note& n = score.notes[i];
    if (!n.is_drum()) continue;
    const int c = drum_class(n.pitch);
    if (c < 0) {
      ++grid.unmapped;
      continue;
    }
    const double position = n.start_beat * kStepsPerQuarter;
    const int64_t step = static_cast<int64_t>(std::llround(position));
    Hit hit;
    hit.step = step;
    hit.drum_class = c;
    hit.offset_steps = position - static_cast<double>(step);
    hit.offset_ms = (n.start_s - score.seconds_at(grid_tick(score, step))) * 1000.0;
    hit.velocity = n.velocity;
    hit.note_index = static_cast<int64_t>(i);
    auto [it, inserted] = best.emplace(std::make_pair(step, c), hit);
    if (!inserted) {
      ++grid.merged;
      if (hit.velocity > it->second.velocity) it->second = hit;
    }
  }
  grid.hits.reserve(best.size());
  for (auto& entry : best) grid.hits.push_back(entry.second);
  grid.num_steps = grid.hits.empty() ? 0 : grid.hits.back().step + 1;
  const double seconds = score.duration_seconds();
  const double beats = score.beats_at(score.end_tick);
  grid.mean_bpm = seconds > 0 && beats > 0 ? 60.0 * beats / seconds : 120.0;
  return grid;
}

std::vector<GrooveWindow> make_windows(const DrumGrid& grid, int64_t steps, int64_t hop, int64_t min_hits) {
  std::vector<GrooveWindow> out;
  if (steps <= 0 || hop <= 0) return out;
  size_t first_hit = 0;
  for (int64_t start = 0; start < grid.num_steps; start += hop) {
    while (first_hit < grid.hits.size() && grid.hits[first_hit].step < start) ++first_hit;
    GrooveWindow w;
    w.first_step = start;
    for (size_t i = first_hit; i < grid.hits.size() && grid.hits[i].step < start + steps; ++i) {
      Hit h = grid.hits[i];
      h.step -= start;
      w.hits.push_back(h);
    }
    if (static_cast<int64_t>(w.hits.size()) >= min_hits) out.push_back(std::move(w));
  }
  return out;
}

}  // namespace kmidi::groove
