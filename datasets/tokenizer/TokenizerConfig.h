#pragma once
// The REMI-family tokenizer's options. The vocabulary is a pure function of
// this struct: the same config always yields the same ids (see Vocabulary.h).

#include <string>
#include <vector>

#include "core/Config.h"

namespace kmidi::tokenizer {

/// How instruments appear in the token stream.
///  - none:      no Program tokens; every pitched note decodes to `decode_program`.
///  - per_note:  a Program token before every pitched note.
///  - on_change: a Program token only when the instrument differs from the
///               previous pitched note's (notes at one position are grouped by
///               program, so a track segment costs one token).
/// Drum notes never need a Program token: they use PitchDrum tokens.
struct TokenizerConfig : config::Section {
  int positions_per_quarter = 12;  ///< grid resolution: 12 holds 16ths and triplets
  int pitch_min = 21;              ///< lowest pitched note kept (A0)
  int pitch_max = 108;             ///< highest pitched note kept (C8)
  bool drums = true;               ///< keep channel-10 notes as PitchDrum tokens
  int drum_pitch_min = 21;
  int drum_pitch_max = 87;
  int velocity_bins = 32;          ///< evenly spaced values from 1 to 127
  int duration_max_quarters = 8;   ///< longer notes are clipped (and counted)
  bool tempos = true;              ///< Tempo tokens, emitted when the binned tempo changes
  int tempo_bins = 32;             ///< geometrically spaced from tempo_min to tempo_max
  double tempo_min = 40.0;         ///< bpm
  double tempo_max = 250.0;        ///< bpm
  bool time_signatures = true;     ///< TimeSig tokens; when false every bar is 4/4
  std::vector<std::string> allowed_time_signatures{"4/4", "3/4", "2/4", "2/2", "3/8", "6/8",
                                                   "9/8", "12/8", "5/4", "6/4", "7/8"};
  /// Used for a time signature outside `allowed_time_signatures`; empty makes
  /// such a file an error (skipped or fatal by the caller's on_error policy).
  std::string time_signature_fallback;
  std::string program_mode = "per_note";  ///< none | per_note | on_change
  int decode_program = 0;                 ///< program of pitched notes when program_mode is none
  /// Reserved special tokens after PAD, BOS, EOS, MASK (e.g. SEP), ids 4, 5, ...
  /// There are no emotion or style tokens on purpose: the generator takes
  /// emotion as its 64-d input vector (CONTRACTS.md), and a prefix token
  /// would be a second source of truth for the same condition.
  std::vector<std::string> extra_special_tokens;
  int decode_ticks_per_quarter = 480;  ///< resolution of decoded Scores; a multiple of the grid
  /// Longest score encode() accepts, in bars: a guard against corrupt tick values.
  int64_t max_bars = 10000;

  void visit(config::Visitor& v) override;
};

/// A parsed "N/D" time signature.
struct TimeSignatureValue {
  int numerator = 4;
  int denominator = 4;
  bool operator==(const TimeSignatureValue& o) const {
    return numerator == o.numerator && denominator == o.denominator;
  }
  std::string text() const { return std::to_string(numerator) + "/" + std::to_string(denominator); }
};

/// Parses "N/D" with N in 1..64 and D a power of two in 1..64; false otherwise.
bool parse_time_signature(const std::string& text, TimeSignatureValue& out);

}  // namespace kmidi::tokenizer
