#pragma once
// Which token may follow which: the tokenizer's grammar (Tokenizer.h) as a
// state machine over id ranges, so that a sampler can mask every token that
// decode() would skip. It travels in tokenizer.json ("grammar", format in
// Grammar.cpp), so a runtime with only the .onnx file applies the same mask.
//
// A state lists transitions: ids [first, last] lead to a next state. Three
// effects carry the only numbers a finite machine cannot hold:
//   bar:            a Bar token; the bar has no Position yet (last = -1)
//   time_signature: bar_steps = the steps of that TimeSig token's bar
//   position:       allowed only when last < value < bar_steps, with
//                   value = id - first; then last = value
// The machine is stricter than decode() (it follows the encoder: e.g. a
// Tempo directly after its Position, a Program directly before its Pitch)
// and accepts every sequence encode() writes.

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/tokenizer/TokenizerConfig.h"
#include "datasets/tokenizer/Vocabulary.h"

namespace kmidi::tokenizer {

enum class GrammarEffect : uint8_t { kNone, kBar, kTimeSignature, kPosition };

/// "", "bar", "time_signature", "position" as written in tokenizer.json.
const char* effect_name(GrammarEffect effect);

struct GrammarTransition {
  TokenKind kind = TokenKind::kSpecial;  ///< what the ids are (documentation; ids decide)
  int32_t first = 0, last = 0;           ///< inclusive id range
  int32_t next = 0;                      ///< index into Grammar::states()
  GrammarEffect effect = GrammarEffect::kNone;
  bool operator==(const GrammarTransition& o) const {
    return kind == o.kind && first == o.first && last == o.last && next == o.next && effect == o.effect;
  }
};

struct GrammarState {
  std::string name;
  std::vector<GrammarTransition> transitions;  ///< none: the piece is complete (after EOS)
  bool operator==(const GrammarState& o) const { return name == o.name && transitions == o.transitions; }
};

class Grammar {
 public:
  /// The grammar of encode()'s output for this vocabulary and config.
  static Grammar derive(const Vocabulary& vocab, const TokenizerConfig& config);

  Grammar(std::vector<GrammarState> states, int32_t start, int32_t initial_bar_steps,
          int32_t time_signature_first, std::vector<int32_t> bar_steps_by_time_signature, int32_t vocab_size);

  const std::vector<GrammarState>& states() const { return states_; }
  int32_t start() const { return start_; }
  /// Grid steps of a bar before any TimeSig token.
  int32_t initial_bar_steps() const { return initial_bar_steps_; }
  /// Id of the first TimeSig token; bar_steps_by_time_signature()[id - first] for each.
  int32_t time_signature_first() const { return time_signature_first_; }
  const std::vector<int32_t>& bar_steps_by_time_signature() const { return bar_steps_by_time_signature_; }
  int32_t vocab_size() const { return vocab_size_; }
  /// Index of the state called `name`, or -1.
  int32_t find_state(const std::string& name) const;

  bool operator==(const Grammar& o) const;
  bool operator!=(const Grammar& o) const { return !(*this == o); }

 private:
  std::vector<GrammarState> states_;
  int32_t start_;
  int32_t initial_bar_steps_;
  int32_t time_signature_first_;
  std::vector<int32_t> bar_steps_by_time_signature_;
  int32_t vocab_size_;
};

/// Walks a sequence through a grammar: what may come next, and taking it.
/// Copyable; holds a reference to the grammar, which must outlive it.
class GrammarCursor {
 public:
  explicit GrammarCursor(const Grammar& grammar);

  /// Whether `id` may come next.
  bool accepts(int32_t id) const;
  /// Takes `id` when it may come next and returns true; otherwise returns
  /// false and stays where it was.
  bool advance(int32_t id);
  /// Sets mask[id] to 1 for every id that may come next, 0 otherwise;
  /// `mask` is resized to the vocabulary.
  void allowed(std::vector<uint8_t>& mask) const;
  /// No token may follow: the piece ended with EOS.
  bool complete() const;
  const std::string& state_name() const;

 private:
  /// The ids of transition `t` that are allowed now, as [first, last]; empty when first > last.
  std::pair<int32_t, int32_t> open_ids(const GrammarTransition& t) const;

  const Grammar* grammar_;
  int32_t state_;
  int32_t last_position_ = -1;
  int32_t bar_steps_;
};

}  // namespace kmidi::tokenizer
