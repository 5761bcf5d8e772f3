#include "datasets/features/ScorePerturbation.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <sstream>
#include <utility>

#include "core/Errors.h"

namespace kmidi::features {
namespace {

constexpr int kSustainPedal = 64;

int clamp_velocity(double v) { return static_cast<int>(std::clamp<double>(std::lround(v), 1, 127)); }

midi::Score with_notes(const midi::Score& score, const std::function<void(midi::Note&)>& edit) {
  midi::Score out = score;
  for (midi::Note& n : out.notes) edit(n);
  return out;
}

/// Every tick of the score mapped through `map` (monotonic), times recomputed.
midi::Score map_ticks(const midi::Score& score, const std::function<int64_t(int64_t)>& map) {
  midi::Score out = score;
  for (auto& n : out.notes) n.start_tick = map(n.start_tick), n.end_tick = map(n.end_tick);
  for (auto& t : out.tempos) t.tick = map(t.tick);
  for (auto& t : out.time_signatures) t.tick = map(t.tick);
  for (auto& k : out.key_signatures) k.tick = map(k.tick);
  for (auto& c : out.controls) c.tick = map(c.tick);
  for (auto& p : out.programs) p.tick = map(p.tick);
  for (auto& t : out.texts) t.tick = map(t.tick);
  out.end_tick = map(out.end_tick);
  out.update_times();
  return out;
}

/// The last event of `events` at or before `tick` moved to 0, then those in
/// (tick, end) shifted by -tick.
template <typename T>
std::vector<T> window_of(const std::vector<T>& events, int64_t tick, int64_t end) {
  std::vector<T> out;
  const T* in_force = nullptr;
  for (const T& e : events) {
    if (e.tick <= tick) in_force = &e;
  }
  if (in_force) {
    out.push_back(*in_force);
    out.back().tick = 0;
  }
  for (const T& e : events) {
    if (e.tick > tick && e.tick < end) {
      out.push_back(e);
      out.back().tick -= tick;
    }
  }
  return out;
}

/// As window_of, with one value in force per key (channel and controller...).
template <typename T, typename Key>
std::vector<T> keyed_window_of(const std::vector<T>& events, int64_t tick, int64_t end, const Key& key) {
  std::map<decltype(key(events.front())), const T*> in_force;
  for (const T& e : events) {
    if (e.tick <= tick) in_force[key(e)] = &e;
  }
  std::vector<T> out;
  for (const auto& [k, e] : in_force) {
    out.push_back(*e);
    out.back().tick = 0;
  }
  for (const T& e : events) {
    if (e.tick > tick && e.tick < end) {
      out.push_back(e);
      out.back().tick -= tick;
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const T& a, const T& b) { return a.tick < b.tick; });
  return out;
}

double parse_number(const std::string& part, const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || !std::isfinite(v)) {
    throw UsageError("perturbation '" + part + "': '" + text + "' is not a number");
  }
  return v;
}

struct Kind {
  bool takes_value;
  bool integer;
  double lo, hi;
  const char* range;
};

const std::map<std::string, Kind>& kinds() {
  static const std::map<std::string, Kind> k = {
      {"transpose", {true, true, -48, 48, "an integer in -48..48"}},
      {"velocity_flat", {true, true, 1, 127, "an integer in 1..127"}},
      {"velocity_levels", {true, true, 1, 16, "an integer in 1..16"}},
      {"velocity_scale", {true, false, 0.01, 10, "a factor in 0.01..10"}},
      {"velocity_mean", {true, false, 1, 127, "a velocity in 1..127"}},
      {"no_pedal", {false, false, 0, 0, ""}},
      {"pedal_bake", {false, false, 0, 0, ""}},
      {"tempo_scale", {true, false, 0.1, 10, "a factor in 0.1..10"}},
      {"tempo_meta", {true, false, 0.1, 10, "a factor in 0.1..10"}},
      {"tempo_flat", {true, false, 10, 400, "a tempo in 10..400 bpm"}},
      {"crop", {true, false, 0.5, 1e6, "seconds, at least 0.5"}},
  };
  return k;
}

}  // namespace

midi::Score transpose(const midi::Score& score, int semitones) {
  midi::Score out = score;
  out.notes.clear();
  for (midi::Note n : score.notes) {
    if (!n.is_drum()) n.pitch += semitones;
    if (n.pitch >= 0 && n.pitch <= 127) out.notes.push_back(n);
  }
  // Equal shifts keep the (start, track, channel, pitch) order.
  return out;
}

midi::Score set_velocities(const midi::Score& score, int velocity) {
  const int v = std::clamp(velocity, 1, 127);
  return with_notes(score, [v](midi::Note& n) { n.velocity = v; });
}

midi::Score quantise_velocities(const midi::Score& score, int levels) {
  const int n_levels = std::max(levels, 1);
  return with_notes(score, [n_levels](midi::Note& n) {
    const int level = std::min(n_levels - 1, n.velocity * n_levels / 128);
    n.velocity = clamp_velocity((level + 0.5) * 128.0 / n_levels);
  });
}

midi::Score scale_velocities(const midi::Score& score, double factor) {
  return with_notes(score, [factor](midi::Note& n) { n.velocity = clamp_velocity(n.velocity * factor); });
}

midi::Score normalise_velocity_mean(const midi::Score& score, double target_mean) {
  double sum = 0, count = 0;
  for (const auto& n : score.notes) {
    if (!n.is_drum()) sum += n.velocity, count += 1;
  }
  if (count == 0 || sum <= 0) return score;
  return scale_velocities(score, target_mean / (sum / count));
}

midi::Score remove_pedal(const midi::Score& score) {
  midi::Score out = score;
  out.controls.erase(std::remove_if(out.controls.begin(), out.controls.end(),
                                    [](const midi::ControlChange& c) { return c.controller == kSustainPedal; }),
                     out.controls.end());
  return out;
}

midi::Score bake_pedal(const midi::Score& score) {
  // Per channel: the [press, release) tick spans of the sustain pedal.
  std::map<int, std::vector<std::pair<int64_t, int64_t>>> held;
  std::map<int, int64_t> pressed_at;
  std::vector<const midi::ControlChange*> pedal;
  for (const auto& c : score.controls) {
    if (c.controller == kSustainPedal) pedal.push_back(&c);
  }
  std::stable_sort(pedal.begin(), pedal.end(), [](auto* a, auto* b) { return a->tick < b->tick; });
  for (const auto* c : pedal) {
    const bool down = c->value >= 64;
    const auto open = pressed_at.find(c->channel);
    if (down && open == pressed_at.end()) {
      pressed_at[c->channel] = c->tick;
    } else if (!down && open != pressed_at.end()) {
      held[c->channel].emplace_back(open->second, c->tick);
      pressed_at.erase(open);
    }
  }
  const int64_t last = std::max(score.end_tick, score.notes.empty() ? 0 : score.notes.back().end_tick);
  for (const auto& [channel, tick] : pressed_at) held[channel].emplace_back(tick, std::max(last, tick));

  midi::Score out = remove_pedal(score);
  // The next onset of each note's pitch on its channel: a re-struck key ends the sustained one.
  std::map<std::pair<int, int>, int64_t> next_onset;
  for (size_t i = out.notes.size(); i-- > 0;) {
    midi::Note& n = out.notes[i];
    const auto key = std::make_pair(n.channel, n.pitch);
    const auto spans = held.find(n.channel);
    if (spans != held.end()) {
      for (const auto& [press, release] : spans->second) {
        if (press < n.end_tick && n.end_tick < release) {
          int64_t end = release;
          const auto next = next_onset.find(key);
          if (next != next_onset.end() && next->second > n.start_tick) end = std::min(end, next->second);
          n.end_tick = std::max(n.end_tick, end);
          break;
        }
      }
    }
    next_onset[key] = n.start_tick;
  }
  out.end_tick = std::max(out.end_tick, last);
  out.update_times();
  return out;
}

midi::Score scale_tempo(const midi::Score& score, double factor) {
  if (score.division.smpte) {
    return map_ticks(score, [factor](int64_t t) { return std::llround(static_cast<double>(t) / factor); });
  }
  midi::Score out = score;
  for (auto& t : out.tempos) {
    t.microseconds_per_quarter = std::max<int64_t>(1, std::llround(static_cast<double>(t.microseconds_per_quarter) / factor));
  }
  out.update_times();
  return out;
}

midi::Score restate_tempo(const midi::Score& score, double factor) {
  if (score.division.smpte) return score;
  midi::Score out = score;
  const int tpq = score.division.ticks_per_quarter;
  const int new_tpq = std::max(1, static_cast<int>(std::lround(tpq / factor)));
  out.division.ticks_per_quarter = new_tpq;
  const double exact = static_cast<double>(new_tpq) / tpq;  // the rounded factor's inverse
  for (auto& t : out.tempos) {
    t.microseconds_per_quarter = std::max<int64_t>(1, std::llround(static_cast<double>(t.microseconds_per_quarter) * exact));
  }
  out.update_times();
  return out;
}

midi::Score flatten_tempo(const midi::Score& score, double bpm) {
  if (score.division.smpte) return score;
  const double ticks_per_second = score.division.ticks_per_quarter * bpm / 60.0;
  // Times are read from the original map (`score`), not the one being rewritten.
  midi::Score out =
      map_ticks(score, [&](int64_t t) { return std::llround(score.seconds_at(t) * ticks_per_second); });
  midi::TempoChange one;
  one.microseconds_per_quarter = std::max<int64_t>(1, std::llround(60'000'000.0 / bpm));
  out.tempos = {one};
  out.update_times();
  return out;
}

midi::Score crop(const midi::Score& score, double start_s, double length_s) {
  const int64_t begin = start_s > 0 ? score.tick_at_seconds(start_s) : 0;
  const int64_t end = std::max(begin + 1, score.tick_at_seconds(std::max(start_s, 0.0) + length_s));
  midi::Score out = score;
  out.notes.clear();
  for (midi::Note n : score.notes) {
    if (n.start_tick < begin || n.start_tick >= end) continue;
    n.start_tick -= begin;
    n.end_tick = std::min(n.end_tick, end) - begin;
    out.notes.push_back(n);
  }
  out.tempos = window_of(score.tempos, begin, end);
  out.time_signatures = window_of(score.time_signatures, begin, end);
  out.key_signatures = window_of(score.key_signatures, begin, end);
  out.controls = keyed_window_of(score.controls, begin, end,
                                 [](const midi::ControlChange& c) { return std::make_pair(c.channel, c.controller); });
  out.programs = keyed_window_of(score.programs, begin, end, [](const midi::ProgramChange& p) { return p.channel; });
  out.texts.clear();
  for (midi::TextEvent t : score.texts) {
    if (t.tick >= end) continue;
    t.tick = std::max<int64_t>(0, t.tick - begin);
    out.texts.push_back(t);
  }
  out.end_tick = std::max<int64_t>(0, std::min(score.end_tick, end) - begin);
  out.update_times();
  return out;
}

std::vector<Perturbation> parse_perturbations(const std::string& spec) {
  std::vector<Perturbation> out;
  if (spec.empty() || spec == "none") return out;
  std::stringstream parts(spec);
  std::string part;
  while (std::getline(parts, part, ',')) {
    const size_t colon = part.find(':');
    Perturbation p;
    p.name = part.substr(0, colon);
    const auto kind = kinds().find(p.name);
    if (kind == kinds().end()) {
      std::string names;
      for (const auto& [name, k] : kinds()) names += (names.empty() ? "" : ", ") + name;
      throw UsageError("perturbation '" + part + "': unknown name '" + p.name + "' (one of: " + names + ")");
    }
    const Kind& k = kind->second;
    if (k.takes_value != (colon != std::string::npos)) {
      throw UsageError("perturbation '" + part + "': " +
                       (k.takes_value ? "needs a value (" + p.name + ":<" + k.range + ">)" : "takes no value"));
    }
    if (k.takes_value) {
      p.value = parse_number(part, part.substr(colon + 1));
      if (p.value < k.lo || p.value > k.hi || (k.integer && p.value != std::floor(p.value))) {
        throw UsageError("perturbation '" + part + "': the value must be " + k.range);
      }
    }
    out.push_back(p);
  }
  return out;
}

midi::Score apply_perturbations(const midi::Score& score, const std::vector<Perturbation>& perturbations) {
  midi::Score s = score;
  for (const Perturbation& p : perturbations) {
    const auto i = static_cast<int>(p.value);
    if (p.name == "transpose") s = transpose(s, i);
    else if (p.name == "velocity_flat") s = set_velocities(s, i);
    else if (p.name == "velocity_levels") s = quantise_velocities(s, i);
    else if (p.name == "velocity_scale") s = scale_velocities(s, p.value);
    else if (p.name == "velocity_mean") s = normalise_velocity_mean(s, p.value);
    else if (p.name == "no_pedal") s = remove_pedal(s);
    else if (p.name == "pedal_bake") s = bake_pedal(s);
    else if (p.name == "tempo_scale") s = scale_tempo(s, p.value);
    else if (p.name == "tempo_meta") s = restate_tempo(s, p.value);
    else if (p.name == "tempo_flat") s = flatten_tempo(s, p.value);
    else if (p.name == "crop") s = crop(s, p.start_s, p.value);
    else throw UsageError("perturbation: unknown name '" + p.name + "'");
  }
  return s;
}

}  // namespace kmidi::features
