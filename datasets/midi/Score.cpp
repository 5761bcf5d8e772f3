#include "datasets/midi/Score.h"

#include <algorithm>
#include <cmath>

namespace kmidi::midi {
namespace {

constexpr int64_t kDefaultMicrosecondsPerQuarter = 500000;  // 120 bpm

/// Frames per second of an SMPTE division; 29 stands for 29.97 (drop-frame).
double smpte_frames_per_second(const TimeDivision& division) {
  return division.frames_per_second == 29 ? 29.97 : static_cast<double>(division.frames_per_second);
}

double smpte_ticks_per_second(const TimeDivision& division) {
  return smpte_frames_per_second(division) * static_cast<double>(division.ticks_per_frame);
}

double seconds_per_tick(int64_t microseconds_per_quarter, int ticks_per_quarter) {
  return static_cast<double>(microseconds_per_quarter) / (1e6 * static_cast<double>(ticks_per_quarter));
}

/// The tempo segment that holds `tick`: the last change at or before it, or
/// the first one for ticks before the map.
const TempoChange* segment_at(const std::vector<TempoChange>& tempos, int64_t tick) {
  if (tempos.empty()) return nullptr;
  auto it = std::upper_bound(tempos.begin(), tempos.end(), tick,
                             [](int64_t t, const TempoChange& c) { return t < c.tick; });
  return it == tempos.begin() ? &tempos.front() : &*(it - 1);
}

/// llround that saturates instead of overflowing for absurd inputs.
int64_t round_to_tick(double value) {
  constexpr double kLimit = 9.0e18;
  if (!(value == value)) return 0;  // NaN
  return std::llround(std::clamp(value, -kLimit, kLimit));
}

double seconds_in_segment(const TempoChange& seg, int64_t tick, int ticks_per_quarter) {
  return seg.seconds +
         static_cast<double>(tick - seg.tick) * seconds_per_tick(seg.microseconds_per_quarter, ticks_per_quarter);
}

/// seconds_at for ticks that mostly come in increasing order: the segment
/// index only moves forward; a tick behind it is looked up from scratch.
class TempoCursor {
 public:
  explicit TempoCursor(const Score& score) : score_(&score) {}
  double seconds_at(int64_t tick) {
    const std::vector<TempoChange>& t = score_->tempos;
    if (score_->division.smpte || t.empty() || tick < t[index_].tick) return score_->seconds_at(tick);
    while (index_ + 1 < t.size() && t[index_ + 1].tick <= tick) ++index_;
    return seconds_in_segment(t[index_], tick, score_->division.ticks_per_quarter);
  }

 private:
  const Score* score_;
  size_t index_ = 0;
};

}  // namespace

double Score::seconds_at(int64_t tick) const {
  if (division.smpte) return static_cast<double>(tick) / smpte_ticks_per_second(division);
  const TempoChange* seg = segment_at(tempos, tick);
  if (!seg) return static_cast<double>(tick) * seconds_per_tick(kDefaultMicrosecondsPerQuarter, division.ticks_per_quarter);
  return seconds_in_segment(*seg, tick, division.ticks_per_quarter);
}

double Score::beats_at(int64_t tick) const {
  if (division.smpte) return seconds_at(tick) * 2.0;  // 120 bpm: two quarter notes per second
  return static_cast<double>(tick) / static_cast<double>(division.ticks_per_quarter);
}

int64_t Score::tick_at_seconds(double seconds) const {
  if (division.smpte) return round_to_tick(seconds * smpte_ticks_per_second(division));
  if (tempos.empty()) {
    return round_to_tick(seconds / seconds_per_tick(kDefaultMicrosecondsPerQuarter, division.ticks_per_quarter));
  }
  // The last change whose time is at or before `seconds`; zero-length
  // segments (a tempo of 0 µs per quarter) are passed over this way.
  auto it = std::upper_bound(tempos.begin(), tempos.end(), seconds,
                             [](double s, const TempoChange& c) { return s < c.seconds; });
  const TempoChange& seg = it == tempos.begin() ? tempos.front() : *(it - 1);
  const double per_tick = seconds_per_tick(seg.microseconds_per_quarter, division.ticks_per_quarter);
  if (per_tick <= 0.0) return seg.tick;
  return seg.tick + round_to_tick((seconds - seg.seconds) / per_tick);
}

void Score::update_times() {
  // One entry per tick: when several tempo events share a tick, the last one
  // (in track order, then file order) is the one in force after it.
  std::stable_sort(tempos.begin(), tempos.end(),
                   [](const TempoChange& a, const TempoChange& b) { return a.tick < b.tick; });
  size_t kept = 0;
  for (size_t i = 0; i < tempos.size(); ++i) {
    if (kept > 0 && tempos[kept - 1].tick == tempos[i].tick) {
      tempos[kept - 1] = tempos[i];
    } else {
      tempos[kept++] = tempos[i];
    }
  }
  tempos.resize(kept);
  if (tempos.empty() || tempos.front().tick > 0) {
    TempoChange initial;
    initial.tick = 0;
    initial.microseconds_per_quarter = kDefaultMicrosecondsPerQuarter;
    tempos.insert(tempos.begin(), initial);
  }
  tempos.front().seconds = division.smpte ? seconds_at(tempos.front().tick) : 0.0;
  for (size_t i = 1; i < tempos.size(); ++i) {
    const TempoChange& prev = tempos[i - 1];
    tempos[i].seconds =
        division.smpte ? seconds_at(tempos[i].tick)
                       : prev.seconds + static_cast<double>(tempos[i].tick - prev.tick) *
                                            seconds_per_tick(prev.microseconds_per_quarter, division.ticks_per_quarter);
  }

  // Events sorted by tick (the reader's output) walk the map with a cursor;
  // anything else falls back to a binary search. Both give seconds_at's value.
  TempoCursor cursor(*this);
  for (Note& n : notes) {
    n.start_beat = beats_at(n.start_tick);
    n.end_beat = beats_at(n.end_tick);
    n.start_s = cursor.seconds_at(n.start_tick);
    n.end_s = seconds_at(n.end_tick);
  }
  cursor = TempoCursor(*this);
  for (ControlChange& c : controls) c.seconds = cursor.seconds_at(c.tick);
  cursor = TempoCursor(*this);
  for (ProgramChange& p : programs) p.seconds = cursor.seconds_at(p.tick);
}

}  // namespace kmidi::midi
