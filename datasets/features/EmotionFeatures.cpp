#include "datasets/features/EmotionFeatures.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace kmidi::features {
namespace {

// Krumhansl & Kessler (1982) probe-tone profiles, C major and C minor.
constexpr std::array<double, 12> kMajorProfile = {6.35, 2.23, 3.48, 2.33, 4.38, 4.09,
                                                  2.52, 5.19, 2.39, 3.66, 2.29, 2.88};
constexpr std::array<double, 12> kMinorProfile = {6.33, 2.68, 3.52, 5.38, 2.60, 3.53,
                                                  2.54, 4.75, 3.98, 2.69, 3.34, 3.17};

double clip01(double v) { return std::isfinite(v) ? std::clamp(v, 0.0, 1.0) : 0.0; }
double clip(double v, double lo, double hi) { return std::isfinite(v) ? std::clamp(v, lo, hi) : 0.0; }

double mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double upper = v[mid];
  if (v.size() % 2) return upper;
  return 0.5 * (upper + *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid)));
}

double pearson(const std::array<double, 12>& a, const std::array<double, 12>& b) {
  double ma = 0, mb = 0;
  for (int i = 0; i < 12; ++i) ma += a[i], mb += b[i];
  ma /= 12, mb /= 12;
  double num = 0, da = 0, db = 0;
  for (int i = 0; i < 12; ++i) {
    num += (a[i] - ma) * (b[i] - mb);
    da += (a[i] - ma) * (a[i] - ma);
    db += (b[i] - mb) * (b[i] - mb);
  }
  return da > 0 && db > 0 ? num / std::sqrt(da * db) : 0.0;
}

template <size_t N>
void normalise_into(const std::array<double, N>& counts, float* out) {
  const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
  for (size_t i = 0; i < N; ++i) out[i] = total > 0 ? static_cast<float>(counts[i] / total) : 0.0f;
}

double entropy(const double* p, size_t n) {
  double total = 0, h = 0;
  for (size_t i = 0; i < n; ++i) total += p[i];
  if (total <= 0) return 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] > 0) h -= (p[i] / total) * std::log2(p[i] / total);
  }
  return h;
}


/// Notes starting on one tick.
struct Onset {
  int64_t tick;
  double beat, seconds;
  int lowest, highest;
  std::vector<int> pitches;
};

/// Writes values through the slices of EmotionFeatureLayout.h: a slice used
/// with the wrong number of values does not compile.
class FeatureWriter {
 public:
  explicit FeatureWriter(EmotionFeatures& f) : f_(f) {}

  template <const EmotionFeatureSlice& S>
  void value(double v) {
    static_assert(S.count == 1, "value() writes a one-value slice");
    f_[S.first] = static_cast<float>(v);
  }
  /// Counts as shares of their sum (all zeros when it is 0).
  template <const EmotionFeatureSlice& S, size_t N>
  void shares(const std::array<double, N>& counts) {
    static_assert(S.count == N, "shares() needs one count per value of the slice");
    normalise_into(counts, &f_[S.first]);
  }
  template <const EmotionFeatureSlice& S>
  void one_hot(size_t k) {
    if (k >= S.count) throw std::logic_error(std::string("one_hot: value ") + std::to_string(k) + " outside slice " + S.name);
    f_[S.first + k] = 1.0f;
  }

 private:
  EmotionFeatures& f_;
};

}  // namespace

KeyEstimate estimate_key(const std::array<double, 12>& histogram) {
  KeyEstimate best;
  best.major_correlation = best.minor_correlation = -2.0;
  double best_any = -2.0;
  for (int tonic = 0; tonic < 12; ++tonic) {
    std::array<double, 12> rotated;
    for (int i = 0; i < 12; ++i) rotated[i] = histogram[(i + tonic) % 12];
    const double major = pearson(rotated, kMajorProfile), minor = pearson(rotated, kMinorProfile);
    best.major_correlation = std::max(best.major_correlation, major);
    best.minor_correlation = std::max(best.minor_correlation, minor);
    if (major > best_any) best_any = major, best.tonic = tonic, best.major = true;
    if (minor > best_any) best_any = minor, best.tonic = tonic, best.major = false;
  }
  return best;
}

namespace {

using namespace emotion_slice;

/// Pitched notes (channel 10 excluded), in the score's order (by start tick).
struct NoteGroups {
  std::vector<const midi::Note*> pitched;
  size_t drums = 0;
  std::set<int> programs;  ///< of pitched notes
};

NoteGroups group_notes(const midi::Score& score) {
  NoteGroups g;
  for (const auto& n : score.notes) {
    if (n.is_drum()) {
      ++g.drums;
    } else {
      g.pitched.push_back(&n);
      g.programs.insert(n.program);
    }
  }
  return g;
}

void write_tempo(const midi::Score& score, double duration_s, FeatureWriter& w) {
  double weighted = 0, total = 0, lo = 1e9, hi = 0;
  std::vector<double> bpms;
  for (size_t i = 0; i < score.tempos.size(); ++i) {
    const auto& t = score.tempos[i];
    const double end = i + 1 < score.tempos.size() ? score.tempos[i + 1].seconds : duration_s;
    const double span = std::max(0.0, end - t.seconds);
    if (span <= 0 && i + 1 < score.tempos.size()) continue;
    weighted += t.bpm() * span;
    total += span;
    bpms.push_back(t.bpm());
    lo = std::min(lo, t.bpm());
    hi = std::max(hi, t.bpm());
  }
  const double tempo = total > 0 ? weighted / total : (bpms.empty() ? 120.0 : bpms.front());
  w.value<kTempoMean>(clip01(tempo / 200.0));
  w.value<kTempoStd>(clip01(stddev(bpms) / 50.0));
  w.value<kTempoMin>(clip01((bpms.empty() ? 120.0 : lo) / 200.0));
  w.value<kTempoMax>(clip01((bpms.empty() ? 120.0 : hi) / 200.0));
  const double changes = score.tempos.empty() ? 0.0 : static_cast<double>(score.tempos.size() - 1);
  w.value<kTempoChanges>(duration_s > 0 ? clip01(changes / (duration_s / 60.0) / 10.0) : 0.0);
}

/// The one-hot slot of the signature that lasts longest (4/4 without any).
void write_time_signature(const midi::Score& score, double duration_s, FeatureWriter& w) {
  std::map<std::pair<int, int>, double> by_signature;
  if (score.time_signatures.empty()) by_signature[{4, 4}] = std::max(duration_s, 1.0);
  for (size_t i = 0; i < score.time_signatures.size(); ++i) {
    const auto& ts = score.time_signatures[i];
    const double start = score.seconds_at(ts.tick);
    const double end = i + 1 < score.time_signatures.size() ? score.seconds_at(score.time_signatures[i + 1].tick)
                                                           : duration_s;
    by_signature[{ts.numerator, ts.denominator}] += std::max(end - start, 1e-9);
  }
  const auto dominant = std::max_element(by_signature.begin(), by_signature.end(),
                                         [](const auto& a, const auto& b) { return a.second < b.second; })->first;
  const int slot = dominant == std::make_pair(2, 4) ? 0 : dominant == std::make_pair(3, 4) ? 1
                 : dominant == std::make_pair(4, 4) ? 2 : dominant == std::make_pair(6, 8) ? 3 : 4;
  w.one_hot<kTimeSignature>(static_cast<size_t>(slot));
}

/// Sustain pedal: down while any channel holds CC64 >= 64.
void write_pedal(const midi::Score& score, double duration_s, FeatureWriter& w) {
  std::vector<const midi::ControlChange*> pedal;
  for (const auto& c : score.controls) {
    if (c.controller == 64) pedal.push_back(&c);
  }
  std::sort(pedal.begin(), pedal.end(), [](auto* a, auto* b) { return a->tick < b->tick; });
  std::array<bool, 16> down{};
  int down_count = 0, presses = 0;
  double down_time = 0, since = 0;
  for (const auto* c : pedal) {
    const bool is_down = c->value >= 64;
    bool& state = down[static_cast<size_t>(c->channel & 15)];
    if (is_down == state) continue;
    if (down_count > 0) down_time += c->seconds - since;
    since = c->seconds;
    state = is_down;
    down_count += is_down ? 1 : -1;
    if (is_down) ++presses;
  }
  if (down_count > 0) down_time += std::max(0.0, duration_s - since);
  w.value<kPedalDown>(duration_s > 0 ? clip01(down_time / duration_s) : 0.0);
  w.value<kPedalPresses>(duration_s > 0 ? clip01(presses / (duration_s / 60.0) / 30.0) : 0.0);
}

void write_instrumentation(const NoteGroups& notes, FeatureWriter& w) {
  const size_t total_notes = notes.pitched.size() + notes.drums;
  w.value<kDrumShare>(total_notes ? static_cast<double>(notes.drums) / static_cast<double>(total_notes) : 0.0);
  w.value<kPrograms>(clip01(static_cast<double>(notes.programs.size()) / 16.0));
}

/// Pitch classes, key, register and pitch entropy; returns the key estimate.
KeyEstimate write_pitch(const std::vector<const midi::Note*>& pitched, FeatureWriter& w) {
  std::array<double, 12> pc{};
  std::array<double, 128> pitch_hist{};
  std::vector<double> pitches;
  std::array<double, 3> reg{};
  for (const auto* n : pitched) {
    const double weight = std::max(n->end_beat - n->start_beat, 1.0 / 64.0);
    pc[static_cast<size_t>(n->pitch % 12)] += weight;
    pitch_hist[static_cast<size_t>(n->pitch)] += 1;
    pitches.push_back(n->pitch);
    reg[n->pitch < 48 ? 0 : n->pitch < 72 ? 1 : 2] += 1;
  }
  w.shares<kPitchClasses>(pc);
  const KeyEstimate key = estimate_key(pc);
  std::array<double, 12> pc_tonic{};
  for (int i = 0; i < 12; ++i) pc_tonic[static_cast<size_t>(i)] = pc[static_cast<size_t>((i + key.tonic) % 12)];
  w.shares<kPitchClassesFromTonic>(pc_tonic);
  w.value<kMajorCorrelation>(key.major_correlation);
  w.value<kMinorCorrelation>(key.minor_correlation);
  w.value<kMode>(key.major_correlation - key.minor_correlation);
  const auto [lo_it, hi_it] = std::minmax_element(pitches.begin(), pitches.end());
  w.value<kPitchMean>(mean(pitches) / 127.0);
  w.value<kPitchStd>(clip01(stddev(pitches) / 24.0));
  w.value<kPitchMin>(*lo_it / 127.0);
  w.value<kPitchMax>(*hi_it / 127.0);
  w.value<kPitchRange>(clip01((*hi_it - *lo_it) / 88.0));
  w.shares<kRegister>(reg);
  w.value<kPitchClassEntropy>(entropy(pc.data(), 12) / std::log2(12.0));
  w.value<kPitchEntropy>(clip01(entropy(pitch_hist.data(), 128) / std::log2(88.0)));
  return key;
}

/// Pitched notes grouped by start tick (the notes are sorted by it).
std::vector<Onset> onsets_of(const std::vector<const midi::Note*>& pitched) {
  std::vector<Onset> onsets;
  for (const auto* n : pitched) {
    if (onsets.empty() || onsets.back().tick != n->start_tick) {
      onsets.push_back(Onset{n->start_tick, n->start_beat, n->start_s, n->pitch, n->pitch, {}});
    }
    Onset& o = onsets.back();
    o.lowest = std::min(o.lowest, n->pitch);
    o.highest = std::max(o.highest, n->pitch);
    o.pitches.push_back(n->pitch);
  }
  return onsets;
}

/// Intervals between consecutive top-voice pitches.
void write_melody(const std::vector<double>& top, FeatureWriter& w) {
  std::array<double, 13> intervals{};
  double abs_sum = 0, up = 0, down = 0, same = 0;
  for (size_t i = 1; i < top.size(); ++i) {
    const int d = static_cast<int>(top[i] - top[i - 1]);
    intervals[static_cast<size_t>(std::min(std::abs(d), 12))] += 1;
    abs_sum += std::abs(d);
    (d > 0 ? up : d < 0 ? down : same) += 1;
  }
  w.shares<kMelodicIntervals>(intervals);
  const double steps = static_cast<double>(top.size() > 1 ? top.size() - 1 : 0);
  if (steps > 0) {
    w.value<kMelodicIntervalMean>(clip01(abs_sum / steps / 12.0));
    w.value<kMelodicUp>(up / steps);
    w.value<kMelodicDown>(down / steps);
    w.value<kMelodicRepeat>(same / steps);
  }
}

/// Top voice (highest note of each onset) and bass (lowest).
void write_voices(const std::vector<Onset>& onsets, const KeyEstimate& key, FeatureWriter& w) {
  std::vector<double> top, bass;
  std::array<double, 12> top_pc{};
  for (const auto& o : onsets) {
    top.push_back(o.highest);
    bass.push_back(o.lowest);
    top_pc[static_cast<size_t>((o.highest - key.tonic + 120) % 12)] += 1;
  }
  w.value<kTopVoiceMean>(mean(top) / 127.0);
  w.value<kBassMean>(mean(bass) / 127.0);
  w.shares<kTopVoicePitchClassesFromTonic>(top_pc);
  write_melody(top, w);
}

/// Interval classes of the note pairs of each onset.
void write_harmony(const std::vector<Onset>& onsets, FeatureWriter& w) {
  std::array<double, 7> ic{};
  for (const auto& o : onsets) {
    for (size_t a = 0; a < o.pitches.size(); ++a) {
      for (size_t b = a + 1; b < o.pitches.size(); ++b) {
        const int d = std::abs(o.pitches[a] - o.pitches[b]) % 12;
        ic[static_cast<size_t>(std::min(d, 12 - d))] += 1;
      }
    }
  }
  w.shares<kHarmonicIntervals>(ic);
  const double pairs = std::accumulate(ic.begin(), ic.end(), 0.0);
  w.value<kConsonance>(pairs > 0 ? (ic[0] + ic[3] + ic[4] + ic[5]) / pairs : 0.0);
}

/// Note and onset density, inter-onset intervals, metric positions.
void write_rhythm(const midi::Score& score, size_t pitched_notes, const std::vector<Onset>& onsets, double duration_s,
                  FeatureWriter& w) {
  const double span_s = std::max(duration_s, 1e-6);
  const double span_beats = std::max(score.beats_at(score.end_tick), 1e-6);
  w.value<kNotesPerSecond>(clip01(static_cast<double>(pitched_notes) / span_s / 20.0));
  w.value<kNotesPerBeat>(clip01(static_cast<double>(pitched_notes) / span_beats / 8.0));
  w.value<kOnsetsPerSecond>(clip01(static_cast<double>(onsets.size()) / span_s / 10.0));
  w.value<kOnsetsPerBeat>(clip01(static_cast<double>(onsets.size()) / span_beats / 4.0));
  std::vector<double> ioi_s, ioi_beats;
  for (size_t i = 1; i < onsets.size(); ++i) {
    ioi_s.push_back(onsets[i].seconds - onsets[i - 1].seconds);
    ioi_beats.push_back(onsets[i].beat - onsets[i - 1].beat);
  }
  w.value<kIoiMeanSeconds>(clip01(mean(ioi_s)));
  w.value<kIoiStdSeconds>(clip01(stddev(ioi_s)));
  w.value<kIoiMedianSeconds>(clip01(median(ioi_s)));
  w.value<kIoiMeanBeats>(clip01(mean(ioi_beats) / 2.0));
  w.value<kIoiStdBeats>(clip01(stddev(ioi_beats) / 2.0));
  w.value<kIoiVariation>(mean(ioi_s) > 0 ? clip01(stddev(ioi_s) / mean(ioi_s) / 2.0) : 0.0);
  std::array<double, 4> metric{};
  constexpr double kTolerance = 1.0 / 24.0;
  for (const auto& o : onsets) {
    const double frac = o.beat - std::floor(o.beat);
    auto near = [&](double target) { return std::abs(frac - target) < kTolerance; };
    if (near(0.0) || near(1.0)) metric[0] += 1;
    else if (near(0.5)) metric[1] += 1;
    else if (near(0.25) || near(0.75)) metric[2] += 1;
    else metric[3] += 1;
  }
  w.shares<kOnsetPositions>(metric);
}

void write_durations(const std::vector<const midi::Note*>& pitched, FeatureWriter& w) {
  std::vector<double> dur_s, dur_beats;
  double staccato = 0, legato = 0;
  for (const auto* n : pitched) {
    dur_s.push_back(n->end_s - n->start_s);
    const double beats = n->end_beat - n->start_beat;
    dur_beats.push_back(beats);
    staccato += beats < 0.25;
    legato += beats >= 1.0;
  }
  const double count = static_cast<double>(pitched.size());
  w.value<kDurationMeanSeconds>(clip01(mean(dur_s) / 2.0));
  w.value<kDurationStdSeconds>(clip01(stddev(dur_s) / 2.0));
  w.value<kDurationMeanBeats>(clip01(mean(dur_beats) / 4.0));
  w.value<kStaccato>(staccato / count);
  w.value<kLegato>(legato / count);
}

/// Velocities: level, spread, histogram, slope over time, accents.
void write_dynamics(const std::vector<const midi::Note*>& pitched, FeatureWriter& w) {
  std::vector<double> velocities, times;
  std::array<double, 8> vel_hist{};
  for (const auto* n : pitched) {
    velocities.push_back(n->velocity);
    times.push_back(n->start_s);
    vel_hist[static_cast<size_t>(std::min(n->velocity / 16, 7))] += 1;
  }
  const double vmean = mean(velocities), vstd = stddev(velocities);
  w.value<kVelocityMean>(vmean / 127.0);
  w.value<kVelocityStd>(clip01(vstd / 64.0));
  w.value<kVelocityMin>(*std::min_element(velocities.begin(), velocities.end()) / 127.0);
  w.value<kVelocityMax>(*std::max_element(velocities.begin(), velocities.end()) / 127.0);
  w.shares<kVelocities>(vel_hist);
  const double tm = mean(times);
  double num = 0, den = 0;
  for (size_t i = 0; i < times.size(); ++i) {
    num += (times[i] - tm) * (velocities[i] - vmean);
    den += (times[i] - tm) * (times[i] - tm);
  }
  w.value<kVelocitySlope>(den > 0 ? clip(num / den * 60.0 / 127.0, -1.0, 1.0) : 0.0);
  double accents = 0;
  for (double v : velocities) accents += v > vmean + vstd;
  w.value<kAccents>(accents / static_cast<double>(pitched.size()));
}

/// Polyphony over time and silence between the first onset and the last release.
void write_texture(const std::vector<const midi::Note*>& pitched, FeatureWriter& w) {
  std::vector<std::pair<double, int>> events;
  for (const auto* n : pitched) {
    events.emplace_back(n->start_s, +1);
    events.emplace_back(std::max(n->end_s, n->start_s), -1);
  }
  std::sort(events.begin(), events.end());  // releases (-1) before onsets at equal times
  int active = 0, max_active = 0;
  double sounding = 0, weighted = 0, last = events.front().first;
  for (const auto& [t, delta] : events) {
    if (active > 0) {
      sounding += t - last;
      weighted += (t - last) * active;
    }
    last = t;
    active += delta;
    max_active = std::max(max_active, active);
  }
  const double span = events.back().first - events.front().first;
  w.value<kPolyphonyMean>(sounding > 0 ? clip01(weighted / sounding / 8.0) : 0.0);
  w.value<kPolyphonyMax>(clip01(max_active / 16.0));
  w.value<kSilence>(span > 0 ? clip01(1.0 - sounding / span) : 0.0);
}

/// Harmonic variety: distinct pitch classes per bar (bars from the time signatures).
void write_bar_variety(const midi::Score& score, const std::vector<const midi::Note*>& pitched, FeatureWriter& w) {
  std::map<int64_t, std::set<int>> per_bar;
  for (const auto* n : pitched) {
    // Bars completed under earlier signatures plus bars into the current one.
    double segment_start = 0, bar_beats = 4;
    int64_t bars_before = 0;
    for (const auto& ts : score.time_signatures) {
      if (ts.tick > n->start_tick) break;
      const double start = score.beats_at(ts.tick);
      bars_before += static_cast<int64_t>(std::ceil((start - segment_start) / bar_beats - 1e-9));
      segment_start = start;
      bar_beats = ts.numerator * 4.0 / ts.denominator;
    }
    const int64_t bar = bars_before + static_cast<int64_t>(std::floor((n->start_beat - segment_start) / bar_beats));
    per_bar[bar].insert(n->pitch % 12);
  }
  double sum = 0;
  for (const auto& [bar, set] : per_bar) sum += static_cast<double>(set.size());
  w.value<kPitchClassesPerBar>(clip01(sum / static_cast<double>(per_bar.size()) / 12.0));
}

}  // namespace

EmotionFeatures emotion_features(const midi::Score& score) {
  EmotionFeatures f{};
  FeatureWriter w(f);
  const NoteGroups notes = group_notes(score);
  const double duration_s = score.duration_seconds();
  // Tempo, metre, duration, pedal and instrumentation apply to every score, even an empty one.
  write_tempo(score, duration_s, w);
  write_time_signature(score, duration_s, w);
  w.value<kDuration>(clip01(duration_s / 600.0));
  write_pedal(score, duration_s, w);
  write_instrumentation(notes, w);
  if (notes.pitched.empty()) return f;

  const KeyEstimate key = write_pitch(notes.pitched, w);
  const std::vector<Onset> onsets = onsets_of(notes.pitched);
  write_voices(onsets, key, w);
  write_harmony(onsets, w);
  write_rhythm(score, notes.pitched.size(), onsets, duration_s, w);
  write_durations(notes.pitched, w);
  write_dynamics(notes.pitched, w);
  write_texture(notes.pitched, w);
  write_bar_variety(score, notes.pitched, w);
  return f;
}

}  // namespace kmidi::features
