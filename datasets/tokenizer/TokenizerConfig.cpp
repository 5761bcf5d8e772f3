#include "datasets/tokenizer/TokenizerConfig.h"

#include <algorithm>
#include <charconv>
#include <set>

namespace kmidi::tokenizer {

bool parse_time_signature(const std::string& text, TimeSignatureValue& out) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos) return false;
  int num = 0, den = 0;
  const char* b = text.data();
  const char* e = text.data() + text.size();
  auto r1 = std::from_chars(b, b + slash, num);
  if (r1.ec != std::errc() || r1.ptr != b + slash) return false;
  auto r2 = std::from_chars(b + slash + 1, e, den);
  if (r2.ec != std::errc() || r2.ptr != e) return false;
  if (num < 1 || num > 64 || den < 1 || den > 64 || (den & (den - 1)) != 0) return false;
  out = TimeSignatureValue{num, den};
  return true;
}

void TokenizerConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("positions_per_quarter", positions_per_quarter,
          Spec("Position grid steps per quarter note (12 holds 16ths and triplets)").min(1).max(96));
  v.field("pitch_min", pitch_min, Spec("lowest pitched note kept; lower ones are dropped and counted").min(0).max(127));
  v.field("pitch_max", pitch_max, Spec("highest pitched note kept").min(0).max(127));
  v.field("drums", drums, Spec("keep drum notes (MIDI channel 10) as PitchDrum tokens; false drops and counts them"));
  v.field("drum_pitch_min", drum_pitch_min, Spec("lowest drum note kept").min(0).max(127));
  v.field("drum_pitch_max", drum_pitch_max, Spec("highest drum note kept").min(0).max(127));
  v.field("velocity_bins", velocity_bins, Spec("number of Velocity tokens, evenly spaced over 1..127").min(2).max(127));
  v.field("duration_max_quarters", duration_max_quarters,
          Spec("longest Duration token in quarter notes; longer notes are clipped and counted").min(1).max(64));
  v.field("tempos", tempos, Spec("emit Tempo tokens where the binned tempo changes"));
  v.field("tempo_bins", tempo_bins, Spec("number of Tempo tokens, geometrically spaced").min(2).max(256));
  v.field("tempo_min", tempo_min, Spec("slowest Tempo token in bpm; slower tempos clamp to it").positive());
  v.field("tempo_max", tempo_max, Spec("fastest Tempo token in bpm").positive().max(1000));
  v.field("time_signatures", time_signatures,
          Spec("emit TimeSig tokens at bars where the time signature changes; false: every bar is 4/4"));
  v.field("allowed_time_signatures", allowed_time_signatures, Spec("time signatures with a TimeSig token, as N/D"));
  v.field("time_signature_fallback", time_signature_fallback,
          Spec("time signature used for one outside the allowed set; empty makes such a file an error"));
  v.field("program_mode", program_mode,
          Spec("Program tokens: none, per_note (before every pitched note) or on_change").one_of(
              {"none", "per_note", "on_change"}));
  v.field("decode_program", decode_program, Spec("program of decoded pitched notes when program_mode is none").min(0).max(127));
  v.field("extra_special_tokens", extra_special_tokens,
          Spec("reserved special tokens after PAD, BOS, EOS, MASK (upper-case names, e.g. SEP)"));
  v.field("decode_ticks_per_quarter", decode_ticks_per_quarter,
          Spec("ticks per quarter of decoded scores; a multiple of positions_per_quarter").min(1).max(32767));
  v.field("max_bars", max_bars,
          Spec("longest score encode accepts, in bars (a guard against corrupt tick values)").min(1));

  if (!v.reading()) return;
  v.check(pitch_min <= pitch_max, "pitch_max", "must be >= pitch_min (" + std::to_string(pitch_min) + ")");
  v.check(drum_pitch_min <= drum_pitch_max, "drum_pitch_max",
          "must be >= drum_pitch_min (" + std::to_string(drum_pitch_min) + ")");
  v.check(tempo_min < tempo_max, "tempo_max", "must be greater than tempo_min (" + std::to_string(tempo_min) + ")");
  v.check(decode_ticks_per_quarter % positions_per_quarter == 0, "decode_ticks_per_quarter",
          "must be a multiple of positions_per_quarter (" + std::to_string(positions_per_quarter) + "), got " +
              std::to_string(decode_ticks_per_quarter));
  std::set<std::string> seen;
  for (const std::string& text : allowed_time_signatures) {
    TimeSignatureValue ts;
    v.check(parse_time_signature(text, ts), "allowed_time_signatures",
            "'" + text + "' is not a time signature N/D (N in 1..64, D a power of two up to 64)");
    v.check(seen.insert(text).second, "allowed_time_signatures", "'" + text + "' is listed twice");
    v.check((ts.numerator * 4 * positions_per_quarter) % ts.denominator == 0, "allowed_time_signatures",
            "a bar of " + text + " is not a whole number of grid steps at positions_per_quarter " +
                std::to_string(positions_per_quarter));
  }
  v.check(!time_signatures || !allowed_time_signatures.empty(), "allowed_time_signatures",
          "must not be empty when time_signatures is true");
  v.check(time_signature_fallback.empty() ||
              std::find(allowed_time_signatures.begin(), allowed_time_signatures.end(),
                        time_signature_fallback) != allowed_time_signatures.end(),
          "time_signature_fallback",
          "'" + time_signature_fallback + "' must be one of allowed_time_signatures");
  std::set<std::string> specials{"PAD", "BOS", "EOS", "MASK"};
  for (const std::string& name : extra_special_tokens) {
    const bool well_formed = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
    v.check(well_formed, "extra_special_tokens", "'" + name + "' must be upper-case letters, digits or _");
    v.check(specials.insert(name).second, "extra_special_tokens", "'" + name + "' is already a special token");
  }
}

}  // namespace kmidi::tokenizer
