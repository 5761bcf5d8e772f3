#pragma once
// REMI-family MIDI tokenizer: Score -> token ids -> Score. Torch-free.
//
// Grammar of an encoded piece (tokens in brackets are conditional):
//
//   BOS
//   { Bar [TimeSig]                      one Bar per bar, empty bars included;
//                                        TimeSig in the first bar and where it changes
//     { Position [Tempo]                 positions rise within the bar; Tempo in
//                                        the first position and where the binned tempo changes
//       { [Program] Pitch Velocity Duration      pitched note
//       | PitchDrum Velocity Duration }          drum note (channel 10)
//     }
//   }
//   EOS
//
// Notes at one position are ordered by (program, pitch, velocity, duration),
// drums after pitched notes. Times are on a grid of positions_per_quarter
// steps per quarter note: onsets and durations are rounded to it (half up),
// durations to at least one step. A time signature change that falls inside
// a bar takes effect at the next bar line.
//
// Grammar.h holds this grammar as a state machine (tokenizer.json "grammar"),
// which sampling uses to mask every token decode() would skip.
//
// The tokenizer is the single source of truth for every id, special ids
// included (PAD 0, BOS 1, EOS 2, MASK 3). It is saved as tokenizer.json beside
// every shard, checkpoint and export (format in Tokenizer.cpp; see to_json()).

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/midi/Score.h"
#include "datasets/tokenizer/Grammar.h"
#include "datasets/tokenizer/TokenizerConfig.h"
#include "datasets/tokenizer/Vocabulary.h"

namespace kmidi::tokenizer {

/// What encode() did with a score's notes. Sums over files with add().
struct EncodeStats {
  int64_t notes_in = 0;            ///< notes in the score
  int64_t notes_encoded = 0;
  int64_t pitch_out_of_range = 0;  ///< pitched notes outside [pitch_min, pitch_max], dropped
  int64_t drums_out_of_range = 0;  ///< drum notes outside [drum_pitch_min, drum_pitch_max], dropped
  int64_t drums_dropped = 0;       ///< drum notes dropped because drums is false
  int64_t durations_clipped = 0;   ///< notes longer than duration_max_quarters
  int64_t time_signatures_replaced = 0;  ///< outside the allowed set, replaced by the fallback
  int64_t bars = 0;
  int64_t tokens = 0;
  void add(const EncodeStats& other);
};

/// What decode() skipped. A model's output may break the grammar anywhere;
/// decode() never throws on ids, it skips and counts.
struct DecodeStats {
  int64_t tokens = 0;
  int64_t notes = 0;
  int64_t pad = 0;                ///< PAD tokens (ignored)
  int64_t invalid = 0;            ///< tokens out of grammar (skipped), incomplete notes excluded
  int64_t out_of_vocabulary = 0;  ///< ids outside [0, vocab_size), also counted in invalid
  int64_t incomplete_notes = 0;   ///< Pitch without its Velocity and Duration
  int64_t after_eos = 0;          ///< tokens after EOS (ignored)
};

class Tokenizer {
 public:
  static constexpr int kFormatVersion = 1;          ///< tokenizer.json format_version
  static constexpr const char* kFormat = "kmidi.tokenizer";
  static constexpr const char* kFamily = "remi";

  /// Validates `config` (the same rules as reading it from YAML; throws
  /// config::ConfigError) and builds the vocabulary.
  explicit Tokenizer(const TokenizerConfig& config);

  /// Reads tokenizer.json. Throws DataError naming the file when it is
  /// malformed, of a newer format_version, or when the vocabulary (or the
  /// grammar, where the file has one) rebuilt from its config differs from
  /// the stored one. Files without a grammar get the derived one.
  static Tokenizer load(const std::string& path);
  /// Parses tokenizer.json text; `origin` names it in messages.
  static Tokenizer from_json(const std::string& text, const std::string& origin);

  /// The canonical tokenizer.json text (deterministic for a config).
  std::string to_json() const;
  /// Writes tokenizer.json atomically.
  void save(const std::string& path) const;
  /// Identifies the tokenizer in shards and checkpoints: sha256 of to_json()
  /// without "grammar", which the config determines (so files written before
  /// the grammar existed keep their identity).
  const std::string& sha256() const { return sha256_; }

  const TokenizerConfig& config() const { return config_; }
  const Vocabulary& vocab() const { return vocab_; }
  /// Which token may follow which (Grammar.h): every sequence it accepts
  /// decodes without a skipped token.
  const Grammar& grammar() const { return grammar_; }
  int32_t vocab_size() const { return vocab_.size(); }
  int32_t pad_id() const { return Vocabulary::kPadId; }  ///< the loss's ignore_index
  int32_t bos_id() const { return Vocabulary::kBosId; }
  int32_t eos_id() const { return Vocabulary::kEosId; }
  int32_t mask_id() const { return Vocabulary::kMaskId; }
  /// Id of a special token by name (PAD, BOS, EOS, MASK or an extra); -1 if none.
  int32_t special_id(const std::string& name) const;
  /// Token names, e.g. for logging a sequence ("Bar Position_0 Pitch_60 ...").
  std::string describe(const int32_t* ids, size_t count) const;

  /// Encodes a score into `out` (cleared first): BOS ... EOS; adds what it
  /// did to `*stats` when given (sums over files). Throws DataError
  /// for a time signature outside the allowed set without fallback or a score
  /// longer than the bar limit. No heap allocation per token: `out` grows
  /// amortised and the sort buffer is reused per thread.
  void encode(const midi::Score& score, std::vector<int32_t>& out, EncodeStats* stats = nullptr) const;
  std::vector<int32_t> encode(const midi::Score& score, EncodeStats* stats = nullptr) const;

  /// Decodes any id sequence into a valid Score: notes with ticks at
  /// decode_ticks_per_quarter, beats, and seconds from the decoded tempos
  /// (120 bpm before the first Tempo token); one track per instrument
  /// (pitched programs on channels 0..15 except 9, drums on channel 9).
  midi::Score decode(const int32_t* ids, size_t count, DecodeStats* stats = nullptr) const;
  midi::Score decode(const std::vector<int32_t>& ids, DecodeStats* stats = nullptr) const {
    return decode(ids.data(), ids.size(), stats);
  }

  /// Grid step of a score tick (rounded half up), as encode() computes it.
  int64_t grid_of_tick(const midi::Score& score, int64_t tick) const;

 private:
  std::string json_text(bool with_grammar) const;

  TokenizerConfig config_;
  Vocabulary vocab_;
  Grammar grammar_;
  std::string sha256_;
  enum class ProgramMode { kNone, kPerNote, kOnChange } program_mode_;
};

}  // namespace kmidi::tokenizer
