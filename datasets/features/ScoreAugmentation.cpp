#include "datasets/features/ScoreAugmentation.h"

#include <cmath>
#include <string>

#include "core/SplitMix64.h"

namespace kmidi::features {
namespace {

using random::splitmix64;

/// A counter-based stream of uniforms: the k-th draw depends only on
/// (seed, epoch, index, k), never on the order clips are visited in.
class Draws {
 public:
  Draws(uint64_t seed, int64_t epoch, int64_t index)
      : state_(splitmix64(splitmix64(seed ^ 0x5CA1AB1Eull) ^ splitmix64(static_cast<uint64_t>(epoch) + 1) ^ static_cast<uint64_t>(index))) {}
  double uniform() { return static_cast<double>(splitmix64(state_ + ++count_) >> 11) * 0x1.0p-53; }  // [0, 1)
  double between(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double log_between(double lo, double hi) { return std::exp(between(std::log(lo), std::log(hi))); }
  int64_t integer(int64_t lo, int64_t hi) {  // lo..hi inclusive
    return lo + std::min<int64_t>(hi - lo, static_cast<int64_t>(uniform() * static_cast<double>(hi - lo + 1)));
  }

 private:
  uint64_t state_;
  uint64_t count_ = 0;
};

bool is_range(const std::vector<double>& r) { return r.size() == 2 && r[0] <= r[1]; }
bool changes(const std::vector<double>& r, double identity) { return r[0] != identity || r[1] != identity; }

std::string range_text(const std::vector<double>& r) {
  return r.size() == 2 ? "[" + std::to_string(r[0]) + ", " + std::to_string(r[1]) + "]" : "a list of " + std::to_string(r.size());
}

}  // namespace

void ScoreAugmentConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("crop_s", crop_s, Spec("[lo, hi] seconds of a random window (0 0: off)").size(2));
  v.field("crop_p", crop_p, Spec("probability that a clip is cropped").unit_interval());
  v.field("tempo_scale", tempo_scale, Spec("[lo, hi] playback speed factor, log-uniform").size(2));
  v.field("tempo_meta", tempo_meta, Spec("[lo, hi] factor on the stated bpm at unchanged seconds, log-uniform").size(2));
  v.field("transpose", transpose, Spec("[lo, hi] semitones, uniform integers").size(2));
  v.field("velocity_scale", velocity_scale, Spec("[lo, hi] velocity factor, uniform").size(2));
  v.field("velocity_flatten_p", velocity_flatten_p, Spec("probability of 1-3 velocity levels").unit_interval());
  v.field("pedal_removal_p", pedal_removal_p, Spec("probability that sustain pedal events are removed").unit_interval());
  v.field("pedal_bake_p", pedal_bake_p, Spec("probability that the pedal is baked into note durations").unit_interval());
  v.check(is_range(crop_s) && crop_s[0] >= 0 && (crop_s[1] == 0 || crop_s[0] >= 0.5), "crop_s",
          "must be [lo, hi] with 0.5 <= lo <= hi seconds, or [0, 0] (off); got " + range_text(crop_s));
  v.check(crop_p == 0 || (crop_s.size() == 2 && crop_s[1] > 0), "crop_p", "needs crop_s");
  v.check(is_range(tempo_scale) && tempo_scale[0] >= 0.25 && tempo_scale[1] <= 4, "tempo_scale",
          "must be [lo, hi] with 0.25 <= lo <= hi <= 4; got " + range_text(tempo_scale));
  v.check(is_range(tempo_meta) && tempo_meta[0] >= 0.25 && tempo_meta[1] <= 4, "tempo_meta",
          "must be [lo, hi] with 0.25 <= lo <= hi <= 4; got " + range_text(tempo_meta));
  v.check(transpose.size() == 2 && transpose[0] <= transpose[1] && transpose[0] >= -24 && transpose[1] <= 24,
          "transpose", "must be [lo, hi] semitones with -24 <= lo <= hi <= 24");
  v.check(is_range(velocity_scale) && velocity_scale[0] >= 0.1 && velocity_scale[1] <= 4, "velocity_scale",
          "must be [lo, hi] with 0.1 <= lo <= hi <= 4; got " + range_text(velocity_scale));
  v.check(pedal_removal_p + pedal_bake_p <= 1.0, "pedal_bake_p",
          "pedal_removal_p + pedal_bake_p must not exceed 1 (they exclude each other)");
}

bool ScoreAugmentConfig::enabled() const {
  return crop_p > 0 || changes(tempo_scale, 1) || changes(tempo_meta, 1) || transpose[0] != 0 || transpose[1] != 0 ||
         changes(velocity_scale, 1) || velocity_flatten_p > 0 || pedal_removal_p > 0 || pedal_bake_p > 0;
}

std::vector<Perturbation> draw_augmentation(const ScoreAugmentConfig& c, uint64_t seed, int64_t epoch, int64_t index,
                                            double clip_seconds) {
  Draws d(seed, epoch, index);
  std::vector<Perturbation> out;
  // Every draw is made whether or not it is used, so that one key's setting
  // never shifts another key's values.
  const double crop_u = d.uniform(), crop_length = d.between(c.crop_s[0], c.crop_s[1]), crop_start = d.uniform();
  const double tempo = d.log_between(c.tempo_scale[0], c.tempo_scale[1]);
  const double meta = d.log_between(c.tempo_meta[0], c.tempo_meta[1]);
  const int64_t semitones = d.integer(c.transpose[0], c.transpose[1]);
  const double velocity = d.between(c.velocity_scale[0], c.velocity_scale[1]);
  const double flatten_u = d.uniform();
  const int64_t levels = d.integer(1, 3), flat_velocity = d.integer(48, 100);
  const double pedal_u = d.uniform();

  if (crop_u < c.crop_p && crop_length < clip_seconds) {
    out.push_back({"crop", crop_length, crop_start * (clip_seconds - crop_length)});
  }
  if (tempo != 1.0) out.push_back({"tempo_scale", tempo});
  if (meta != 1.0) out.push_back({"tempo_meta", meta});
  if (semitones != 0) out.push_back({"transpose", static_cast<double>(semitones)});
  if (velocity != 1.0) out.push_back({"velocity_scale", velocity});
  if (flatten_u < c.velocity_flatten_p) {
    if (levels == 1) out.push_back({"velocity_flat", static_cast<double>(flat_velocity)});
    else out.push_back({"velocity_levels", static_cast<double>(levels)});
  }
  if (pedal_u < c.pedal_removal_p) out.push_back({"no_pedal", 0.0});
  else if (pedal_u < c.pedal_removal_p + c.pedal_bake_p) out.push_back({"pedal_bake", 0.0});
  return out;
}

}  // namespace kmidi::features
