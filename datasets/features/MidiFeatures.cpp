#include "datasets/features/MidiFeatures.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "core/Errors.h"

namespace kmidi::features {
namespace {

constexpr double kDefaultBpm = 120.0;
constexpr double kSameOnsetSeconds = 1e-6;
constexpr int kDrumChannel = 9;

double clamp1(double x) { return std::min(x, 1.0); }

/// Population mean and standard deviation.
std::pair<double, double> mean_std(const std::vector<double>& values) {
  if (values.empty()) return {0.0, 0.0};
  double sum = 0.0;
  for (double v : values) sum += v;
  const double mean = sum / static_cast<double>(values.size());
  double squares = 0.0;
  for (double v : values) squares += (v - mean) * (v - mean);
  return {mean, std::sqrt(squares / static_cast<double>(values.size()))};
}

void check_range(double t0, double t1) {
  if (!std::isfinite(t0) || !std::isfinite(t1) || t0 < 0.0 || !(t0 < t1)) {
    throw UsageError("midi_features: the excerpt must satisfy 0 <= t0 < t1 (seconds); got [" + std::to_string(t0) +
                     ", " + std::to_string(t1) + ")");
  }
}

}  // namespace

double mean_bpm(const midi::Score& score, double t0, double t1) {
  check_range(t0, t1);
  // Piecewise-constant bpm(t): 120 until the first change, then each change
  // holds until the next one.
  std::vector<std::pair<double, double>> segments;  // (start second, bpm)
  segments.emplace_back(0.0, kDefaultBpm);
  for (const midi::TempoChange& change : score.tempos) {
    if (change.microseconds_per_quarter <= 0) {
      throw DataError("midi_features: tempo change at tick " + std::to_string(change.tick) +
                      " has a non-positive microseconds per quarter (" +
                      std::to_string(change.microseconds_per_quarter) + ")");
    }
    segments.emplace_back(std::max(0.0, change.seconds), change.bpm());
  }
  std::stable_sort(segments.begin(), segments.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  double integral = 0.0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const double begin = std::max(segments[i].first, t0);
    const double end = std::min(i + 1 < segments.size() ? segments[i + 1].first : t1, t1);
    if (end > begin) integral += (end - begin) * segments[i].second;
  }
  return integral / (t1 - t0);
}

MidiFeatures midi_features(const midi::Score& score, double t0, double t1) {
  check_range(t0, t1);
  const double span = t1 - t0;
  std::array<double, kMidiFeatureCount> f{};

  std::array<double, 12> pitch_class_time{};
  double pitched_sounding_time = 0.0;
  int64_t onsets = 0, drum_onsets = 0;
  double velocity_sum = 0.0;
  std::vector<double> pitched_onset_durations;
  std::vector<double> onset_times;
  std::set<std::pair<int, int>> parts;  // (track, channel)
  std::set<int> programs;
  int min_pitch = 128, max_pitch = -1;
  std::vector<std::pair<double, int>> polyphony_events;  // (time, -1 end / +1 start)

  for (const midi::Note& n : score.notes) {
    const bool pitched = n.channel != kDrumChannel;
    const bool onset = n.start_s >= t0 && n.start_s < t1;
    const double overlap = std::min(n.end_s, t1) - std::max(n.start_s, t0);
    const bool sounding = overlap > 0.0;
    if (!onset && !sounding) continue;

    parts.emplace(n.track, n.channel);
    if (pitched) {
      programs.insert(n.program);
      min_pitch = std::min(min_pitch, n.pitch);
      max_pitch = std::max(max_pitch, n.pitch);
    }
    if (onset) {
      ++onsets;
      if (!pitched) ++drum_onsets;
      velocity_sum += n.velocity / 127.0;
      onset_times.push_back(n.start_s);
      if (pitched) pitched_onset_durations.push_back(n.end_s - n.start_s);
    }
    if (sounding && pitched) {
      pitch_class_time[static_cast<size_t>(((n.pitch % 12) + 12) % 12)] += overlap;
      pitched_sounding_time += overlap;
      polyphony_events.emplace_back(std::max(n.start_s, t0), +1);
      polyphony_events.emplace_back(std::min(n.end_s, t1), -1);
    }
  }

  if (pitched_sounding_time > 0.0) {
    for (size_t c = 0; c < 12; ++c) f[kPitchClass + c] = pitch_class_time[c] / pitched_sounding_time;
  }
  if (onsets > 0) {
    f[kMeanVelocity] = velocity_sum / static_cast<double>(onsets);
    f[kDrumRatio] = static_cast<double>(drum_onsets) / static_cast<double>(onsets);
  }
  f[kNoteDensity] = clamp1(pitched_sounding_time / span / 16.0);
  f[kTempo] = std::min(mean_bpm(score, t0, t1) / 200.0, 2.0);
  f[kInstruments] = clamp1(static_cast<double>(parts.size()) / 8.0);
  f[kPrograms] = clamp1(static_cast<double>(programs.size()) / 16.0);
  const auto [mean_duration, std_duration] = mean_std(pitched_onset_durations);
  f[kMeanDuration] = clamp1(mean_duration / 5.0);
  f[kDurationStd] = clamp1(std_duration / 5.0);
  if (max_pitch >= 0) f[kPitchRange] = (max_pitch - min_pitch) / 127.0;

  // Sweep: at equal times ends (-1) come before starts (+1), so touching
  // notes do not count as overlapping.
  std::sort(polyphony_events.begin(), polyphony_events.end());
  int current = 0, peak = 0;
  for (const auto& event : polyphony_events) {
    current += event.second;
    peak = std::max(peak, current);
  }
  f[kMaxPolyphony] = clamp1(peak / 16.0);
  f[kNotesPerSecond] = clamp1(static_cast<double>(onsets) / span / 10.0);

  std::sort(onset_times.begin(), onset_times.end());
  std::vector<double> distinct;
  for (double t : onset_times) {
    if (distinct.empty() || t - distinct.back() >= kSameOnsetSeconds) distinct.push_back(t);
  }
  std::vector<double> gaps;
  for (size_t i = 1; i < distinct.size(); ++i) gaps.push_back(distinct[i] - distinct[i - 1]);
  if (gaps.size() >= 2) f[kInterOnsetStd] = clamp1(mean_std(gaps).second);

  MidiFeatures out{};
  for (int i = 0; i < kMidiFeatureCount; ++i) out[static_cast<size_t>(i)] = static_cast<float>(f[static_cast<size_t>(i)]);
  return out;
}

const std::vector<std::string>& midi_feature_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n = {"pc_C", "pc_Cs", "pc_D", "pc_Ds", "pc_E", "pc_F",
                                  "pc_Fs", "pc_G", "pc_Gs", "pc_A", "pc_As", "pc_B",
                                  "mean_velocity", "note_density", "tempo", "instruments",
                                  "programs", "drum_ratio", "mean_duration", "duration_std",
                                  "pitch_range", "max_polyphony", "notes_per_second", "inter_onset_std"};
    for (int i = kFirstReserved; i < kMidiFeatureCount; ++i) n.push_back("reserved_" + std::to_string(i));
    return n;
  }();
  return names;
}

}  // namespace kmidi::features
