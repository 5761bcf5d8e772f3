#pragma once
// The tokenizer's vocabulary: every token's id, name and meaning, built
// deterministically from a TokenizerConfig, plus the quantizers that map
// velocities, durations and tempos onto token values.
//
// Layout (ids in this order; kinds that the config disables are absent):
//   PAD=0, BOS=1, EOS=2, MASK=3, extra specials   "PAD", "SEP", ...
//   Bar                                            "Bar"
//   Position_0 .. Position_{P-1}                   P = longest allowed bar in grid steps
//   TimeSig_<N/D>   (config order)                 "TimeSig_4/4"
//   Tempo_<bpm>     (slow to fast)                 "Tempo_120.00"
//   Program_0 .. Program_127                       program_mode != none
//   Pitch_<pitch_min> .. Pitch_<pitch_max>         "Pitch_60"
//   PitchDrum_<min> .. PitchDrum_<max>             drums = true
//   Velocity_<value> (soft to loud)                "Velocity_127"
//   Duration_<steps> (1 .. max)                    in grid steps of 1/positions_per_quarter quarter

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "datasets/tokenizer/TokenizerConfig.h"

namespace kmidi::tokenizer {

/// What a token means. Values are stable: they appear in tokenizer.json only by
/// name, but code may switch on them.
enum class TokenKind : uint8_t {
  kSpecial,
  kBar,
  kPosition,
  kTimeSignature,
  kTempo,
  kProgram,
  kPitch,
  kPitchDrum,
  kVelocity,
  kDuration,
};

/// "Special", "Bar", ... as written in documentation and reports.
const char* kind_name(TokenKind kind);

/// One token's meaning. `value`: Special: index (0 PAD, 1 BOS, ...); Position:
/// grid step in the bar; TimeSig: index in allowed_time_signatures; Tempo: bin;
/// Program: program; Pitch/PitchDrum: MIDI note; Velocity: MIDI velocity;
/// Duration: grid steps; Bar: 0.
struct TokenInfo {
  TokenKind kind = TokenKind::kSpecial;
  int32_t value = 0;
};

/// A contiguous block of ids of one kind; empty (count 0) when disabled.
struct IdRange {
  int32_t first = 0;
  int32_t count = 0;
  bool contains(int32_t id) const { return id >= first && id < first + count; }
};

class Vocabulary {
 public:
  /// Builds the vocabulary from a config that already passed validation.
  explicit Vocabulary(const TokenizerConfig& config);

  int32_t size() const { return static_cast<int32_t>(names_.size()); }
  /// The token's name; throws UsageError for an id outside [0, size()).
  const std::string& name(int32_t id) const;
  /// The id of a token name, or -1.
  int32_t find(std::string_view name) const;
  /// Meaning of `id`; `id` must be in range.
  const TokenInfo& info(int32_t id) const { return infos_[static_cast<size_t>(id)]; }
  const std::vector<std::string>& names() const { return names_; }
  IdRange range(TokenKind kind) const { return ranges_[static_cast<size_t>(kind)]; }

  static constexpr int32_t kPadId = 0, kBosId = 1, kEosId = 2, kMaskId = 3;
  /// Special tokens in id order: PAD, BOS, EOS, MASK, then the config's extras.
  const std::vector<std::string>& special_names() const { return special_names_; }

  // Quantizers -------------------------------------------------------------
  /// Nearest velocity bin for a MIDI velocity (0..127; 0 maps to the softest bin).
  int velocity_bin(int velocity) const { return velocity_bin_of_[static_cast<size_t>(velocity & 127)]; }
  /// MIDI velocity of bin `bin`: 1 + round(bin * 126 / (bins - 1)).
  int velocity_value(int bin) const { return velocity_values_[static_cast<size_t>(bin)]; }
  /// Nearest tempo bin in log space, clamped to [tempo_min, tempo_max].
  int tempo_bin(double bpm) const;
  /// Tempo of bin `bin`: tempo_min * (tempo_max / tempo_min)^(bin / (bins - 1)).
  double tempo_value(int bin) const { return tempo_values_[static_cast<size_t>(bin)]; }
  /// Index of `ts` among the allowed time signatures, or -1.
  int time_signature_index(const TimeSignatureValue& ts) const;
  const TimeSignatureValue& time_signature(int index) const { return time_signatures_[static_cast<size_t>(index)]; }
  /// Grid steps in one bar of `ts`.
  int64_t bar_steps(const TimeSignatureValue& ts) const;
  /// Longest Duration token in grid steps.
  int32_t max_duration_steps() const { return range(TokenKind::kDuration).count; }
  int32_t positions() const { return range(TokenKind::kPosition).count; }

 private:
  int32_t add(std::string name, TokenKind kind, int32_t value);
  void begin(TokenKind kind);
  void end(TokenKind kind);

  int positions_per_quarter_;
  std::vector<std::string> names_;
  std::vector<TokenInfo> infos_;
  std::unordered_map<std::string, int32_t> ids_;
  IdRange ranges_[10];
  std::vector<std::string> special_names_;
  std::vector<int> velocity_values_;
  std::vector<int> velocity_bin_of_;  // [128]
  std::vector<double> tempo_values_;
  double log_tempo_min_ = 0.0, log_tempo_span_ = 1.0;
  std::vector<TimeSignatureValue> time_signatures_;
};

}  // namespace kmidi::tokenizer
