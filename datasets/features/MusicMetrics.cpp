#include "datasets/features/MusicMetrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

namespace kmidi::features {
namespace {

constexpr double kSameOnsetSeconds = 1e-3;

std::vector<const midi::Note*> pitched_notes(const midi::Score& score) {
  std::vector<const midi::Note*> notes;
  for (const auto& n : score.notes) {
    if (!n.is_drum()) notes.push_back(&n);
  }
  return notes;
}

double pitch_class_entropy(const std::vector<const midi::Note*>& notes) {
  std::array<double, 12> counts{};
  for (const auto* n : notes) counts[static_cast<size_t>(n->pitch % 12)] += 1.0;
  double entropy = 0.0;
  for (double c : counts) {
    if (c > 0) {
      const double p = c / static_cast<double>(notes.size());
      entropy -= p * std::log2(p);
    }
  }
  return entropy;
}

/// Time-weighted mean count of sounding notes over the time any note sounds.
double polyphony(const std::vector<const midi::Note*>& notes) {
  std::vector<std::pair<double, int>> events;  // (seconds, +1 start / -1 end); ends sort first at a tie
  for (const auto* n : notes) {
    if (n->end_s <= n->start_s) continue;
    events.emplace_back(n->start_s, +1);
    events.emplace_back(n->end_s, -1);
  }
  std::sort(events.begin(), events.end());
  double weighted = 0.0, sounding_time = 0.0;
  int sounding = 0;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    sounding += events[i].second;
    const double dt = events[i + 1].first - events[i].first;
    if (sounding > 0) {
      weighted += sounding * dt;
      sounding_time += dt;
    }
  }
  return sounding_time > 0 ? weighted / sounding_time : 0.0;
}

double mean_inter_onset_interval(const std::vector<const midi::Note*>& notes) {
  std::vector<double> onsets;
  for (const auto* n : notes) onsets.push_back(n->start_s);
  std::sort(onsets.begin(), onsets.end());
  std::vector<double> distinct;
  for (double t : onsets) {
    if (distinct.empty() || t - distinct.back() >= kSameOnsetSeconds) distinct.push_back(t);
  }
  if (distinct.size() < 2) return 0.0;
  return (distinct.back() - distinct.front()) / static_cast<double>(distinct.size() - 1);
}

double empty_bar_rate(const midi::Score& score, const std::vector<const midi::Note*>& notes) {
  double bar_beats = 4.0;
  if (!score.time_signatures.empty()) {
    const auto& ts = score.time_signatures.front();
    if (ts.numerator > 0 && ts.denominator > 0) bar_beats = ts.numerator * 4.0 / ts.denominator;
  }
  double last_end = 0.0;
  for (const auto* n : notes) last_end = std::max({last_end, n->end_beat, n->start_beat});
  const auto bars = static_cast<size_t>(std::max(1.0, std::ceil(last_end / bar_beats)));
  std::vector<bool> sounding(bars, false);
  for (const auto* n : notes) {
    const auto first = static_cast<size_t>(std::floor(n->start_beat / bar_beats));
    // The bar holding the last instant of the note (a zero-length note: its onset's bar).
    const double last_instant = n->end_beat > n->start_beat ? n->end_beat : n->start_beat;
    auto last = static_cast<size_t>(std::ceil(last_instant / bar_beats));
    last = last > first ? last - 1 : first;
    for (size_t b = first; b <= last && b < bars; ++b) sounding[b] = true;
  }
  const auto empty = std::count(sounding.begin(), sounding.end(), false);
  return static_cast<double>(empty) / static_cast<double>(bars);
}

double scale_consistency(const std::vector<const midi::Note*>& notes) {
  static constexpr std::array<int, 7> kMajor{0, 2, 4, 5, 7, 9, 11};
  std::array<double, 12> counts{};
  for (const auto* n : notes) counts[static_cast<size_t>(n->pitch % 12)] += 1.0;
  double best = 0.0;
  for (int tonic = 0; tonic < 12; ++tonic) {
    double in_scale = 0.0;
    for (int step : kMajor) in_scale += counts[static_cast<size_t>((tonic + step) % 12)];
    best = std::max(best, in_scale);
  }
  return best / static_cast<double>(notes.size());
}

double sample_std(const std::vector<double>& values) {
  if (values.size() < 2) return 0.0;
  double mean = 0.0;
  for (double v : values) mean += v;
  mean /= static_cast<double>(values.size());
  double ss = 0.0;
  for (double v : values) ss += (v - mean) * (v - mean);
  return std::sqrt(ss / static_cast<double>(values.size() - 1));
}

std::vector<double> kde_on_grid(const std::vector<double>& values, double bandwidth, const std::vector<double>& grid) {
  const double norm = 1.0 / (static_cast<double>(values.size()) * bandwidth * std::sqrt(2.0 * M_PI));
  std::vector<double> density(grid.size(), 0.0);
  for (size_t i = 0; i < grid.size(); ++i) {
    double sum = 0.0;
    for (double v : values) {
      const double z = (grid[i] - v) / bandwidth;
      sum += std::exp(-0.5 * z * z);
    }
    density[i] = sum * norm;
  }
  return density;
}

void check_set(const std::vector<double>& values, const char* name) {
  if (values.empty()) throw std::invalid_argument(std::string("overlap_area: set ") + name + " is empty");
  for (double v : values) {
    if (!std::isfinite(v)) throw std::invalid_argument(std::string("overlap_area: set ") + name + " holds a non-finite value");
  }
}

}  // namespace

const std::array<const char*, kMusicMetricCount>& music_metric_names() {
  static const std::array<const char*, kMusicMetricCount> names{
      "pitch_class_entropy", "pitch_range", "polyphony", "note_density", "inter_onset_interval",
      "note_duration",       "velocity",    "empty_bar_rate", "scale_consistency"};
  return names;
}

std::optional<MusicMetrics> music_metrics(const midi::Score& score) {
  const std::vector<const midi::Note*> notes = pitched_notes(score);
  if (notes.empty()) return std::nullopt;
  int low = 127, high = 0;
  double first_onset = std::numeric_limits<double>::max(), last_release = 0.0;
  double duration_sum = 0.0, velocity_sum = 0.0;
  for (const auto* n : notes) {
    low = std::min(low, n->pitch);
    high = std::max(high, n->pitch);
    first_onset = std::min(first_onset, n->start_s);
    last_release = std::max({last_release, n->end_s, n->start_s});
    duration_sum += n->end_s - n->start_s;
    velocity_sum += n->velocity;
  }
  const auto count = static_cast<double>(notes.size());
  const double span = last_release - first_onset;
  MusicMetrics m{};
  m[0] = pitch_class_entropy(notes);
  m[1] = high - low;
  m[2] = polyphony(notes);
  m[3] = span > 0 ? count / span : 0.0;
  m[4] = mean_inter_onset_interval(notes);
  m[5] = duration_sum / count;
  m[6] = velocity_sum / count;
  m[7] = empty_bar_rate(score, notes);
  m[8] = scale_consistency(notes);
  return m;
}

double scott_bandwidth(const std::vector<double>& values) {
  return sample_std(values) * std::pow(static_cast<double>(values.size()), -0.2);
}

double overlap_area(const std::vector<double>& a, const std::vector<double>& b) {
  check_set(a, "a");
  check_set(b, "b");
  const auto [a_min, a_max] = std::minmax_element(a.begin(), a.end());
  const auto [b_min, b_max] = std::minmax_element(b.begin(), b.end());
  const double low = std::min(*a_min, *b_min), high = std::max(*a_max, *b_max);
  const double span = high - low;
  if (span == 0.0) return 1.0;  // both sets constant, same value
  const double fallback = 0.01 * span;
  double ha = scott_bandwidth(a), hb = scott_bandwidth(b);
  if (!(ha > 0)) ha = fallback;
  if (!(hb > 0)) hb = fallback;
  const double margin = 4.0 * std::max(ha, hb);
  std::vector<double> grid(kOverlapGridPoints);
  const double step = (span + 2 * margin) / (kOverlapGridPoints - 1);
  for (int i = 0; i < kOverlapGridPoints; ++i) grid[static_cast<size_t>(i)] = low - margin + i * step;
  const std::vector<double> pa = kde_on_grid(a, ha, grid), pb = kde_on_grid(b, hb, grid);
  double area = 0.0;
  for (size_t i = 0; i + 1 < grid.size(); ++i) {
    area += 0.5 * step * (std::min(pa[i], pb[i]) + std::min(pa[i + 1], pb[i + 1]));
  }
  return std::clamp(area, 0.0, 1.0);
}

}  // namespace kmidi::features
