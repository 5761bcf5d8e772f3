#include "datasets/tokenizer/Grammar.h"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace kmidi::tokenizer {
namespace {

/// Builds states by name; transitions name their next state, resolved at the end.
class GrammarBuilder {
 public:
  explicit GrammarBuilder(const Vocabulary& vocab) : vocab_(vocab) {}

  void state(const std::string& name) {
    index_[name] = static_cast<int32_t>(states_.size());
    states_.push_back(GrammarState{name, {}});
    pending_.emplace_back();
  }
  /// In the current state: the ids of `kind` lead to `next` (nothing when the kind is disabled).
  void allow(TokenKind kind, const std::string& next, GrammarEffect effect = GrammarEffect::kNone) {
    const IdRange r = vocab_.range(kind);
    if (r.count > 0) allow_ids(kind, r.first, r.first + r.count - 1, next, effect);
  }
  void allow_ids(TokenKind kind, int32_t first, int32_t last, const std::string& next,
                 GrammarEffect effect = GrammarEffect::kNone) {
    states_.back().transitions.push_back(GrammarTransition{kind, first, last, -1, effect});
    pending_.back().push_back(next);
  }
  std::vector<GrammarState> finish() {
    for (size_t s = 0; s < states_.size(); ++s) {
      for (size_t t = 0; t < states_[s].transitions.size(); ++t) {
        const auto it = index_.find(pending_[s][t]);
        if (it == index_.end()) throw std::logic_error("grammar: no state '" + pending_[s][t] + "'");
        states_[s].transitions[t].next = it->second;
      }
    }
    return std::move(states_);
  }

 private:
  const Vocabulary& vocab_;
  std::vector<GrammarState> states_;
  std::vector<std::vector<std::string>> pending_;
  std::map<std::string, int32_t> index_;
};

}  // namespace

const char* effect_name(GrammarEffect effect) {
  switch (effect) {
    case GrammarEffect::kNone: return "";
    case GrammarEffect::kBar: return "bar";
    case GrammarEffect::kTimeSignature: return "time_signature";
    case GrammarEffect::kPosition: return "position";
  }
  return "?";
}

Grammar Grammar::derive(const Vocabulary& vocab, const TokenizerConfig& config) {
  const bool per_note = config.program_mode == "per_note";
  const bool on_change = config.program_mode == "on_change";
  const int32_t bos = Vocabulary::kBosId, eos = Vocabulary::kEosId;
  GrammarBuilder b(vocab);
  b.state("start");
  b.allow_ids(TokenKind::kSpecial, bos, bos, "piece");

  // With program_mode on_change, a Pitch without its own Program needs an
  // earlier one: every state after the first Program has a "+program" twin.
  const std::vector<std::string> flavours = on_change ? std::vector<std::string>{"", "+program"}
                                                      : std::vector<std::string>{""};
  for (const std::string& f : flavours) {
    const auto note_starts = [&] {
      if (per_note || on_change) b.allow(TokenKind::kProgram, "program");
      if (!per_note && (!on_change || !f.empty())) b.allow(TokenKind::kPitch, "pitch" + f);
      b.allow(TokenKind::kPitchDrum, "pitch" + f);
    };
    const auto bar_or_end = [&] {
      b.allow(TokenKind::kBar, "bar" + f, GrammarEffect::kBar);
      b.allow_ids(TokenKind::kSpecial, eos, eos, "end");
    };
    b.state("piece" + f);  // after BOS, before the first Bar
    bar_or_end();
    b.state("bar" + f);
    b.allow(TokenKind::kTimeSignature, "time_signature" + f, GrammarEffect::kTimeSignature);
    b.allow(TokenKind::kPosition, "position" + f, GrammarEffect::kPosition);
    bar_or_end();
    b.state("time_signature" + f);
    b.allow(TokenKind::kPosition, "position" + f, GrammarEffect::kPosition);
    bar_or_end();
    b.state("position" + f);  // a Position has a Tempo or a note after it
    b.allow(TokenKind::kTempo, "event" + f);
    note_starts();
    b.state("event" + f);  // after a Tempo or a note
    note_starts();
    b.allow(TokenKind::kPosition, "position" + f, GrammarEffect::kPosition);
    bar_or_end();
    b.state("pitch" + f);
    b.allow(TokenKind::kVelocity, "velocity" + f);
    b.state("velocity" + f);
    b.allow(TokenKind::kDuration, "event" + f);
  }
  if (per_note || on_change) {
    b.state("program");
    b.allow(TokenKind::kPitch, on_change ? "pitch+program" : "pitch");
  }
  b.state("end");

  // Bars before any TimeSig token are 4/4, as decode() reads them.
  const int default_ts = std::max(0, vocab.time_signature_index(TimeSignatureValue{4, 4}));
  std::vector<int32_t> steps_by_ts;
  for (int32_t i = 0; i < vocab.range(TokenKind::kTimeSignature).count; ++i) {
    steps_by_ts.push_back(static_cast<int32_t>(vocab.bar_steps(vocab.time_signature(i))));
  }
  const int32_t ts_first = steps_by_ts.empty() ? 0 : vocab.range(TokenKind::kTimeSignature).first;
  return Grammar(b.finish(), 0, static_cast<int32_t>(vocab.bar_steps(vocab.time_signature(default_ts))), ts_first,
                 std::move(steps_by_ts), vocab.size());
}

Grammar::Grammar(std::vector<GrammarState> states, int32_t start, int32_t initial_bar_steps,
                 int32_t time_signature_first, std::vector<int32_t> bar_steps_by_time_signature, int32_t vocab_size)
    : states_(std::move(states)),
      start_(start),
      initial_bar_steps_(initial_bar_steps),
      time_signature_first_(time_signature_first),
      bar_steps_by_time_signature_(std::move(bar_steps_by_time_signature)),
      vocab_size_(vocab_size) {
  const auto n = static_cast<int32_t>(states_.size());
  if (start_ < 0 || start_ >= n) throw std::invalid_argument("grammar: start state out of range");
  const auto table = static_cast<int32_t>(bar_steps_by_time_signature_.size());
  for (const GrammarState& s : states_) {
    for (const GrammarTransition& t : s.transitions) {
      if (t.first < 0 || t.first > t.last || t.last >= vocab_size_) {
        throw std::invalid_argument("grammar: state " + s.name + " allows ids [" + std::to_string(t.first) + ", " +
                                    std::to_string(t.last) + "], outside the vocabulary [0, " +
                                    std::to_string(vocab_size_) + ")");
      }
      if (t.next < 0 || t.next >= n) throw std::invalid_argument("grammar: state " + s.name + " leads nowhere");
      if (t.effect == GrammarEffect::kTimeSignature &&
          (t.first < time_signature_first_ || t.last >= time_signature_first_ + table)) {
        throw std::invalid_argument("grammar: state " + s.name + " sets bar steps for ids without a bar length");
      }
    }
  }
}

int32_t Grammar::find_state(const std::string& name) const {
  for (size_t i = 0; i < states_.size(); ++i) {
    if (states_[i].name == name) return static_cast<int32_t>(i);
  }
  return -1;
}

bool Grammar::operator==(const Grammar& o) const {
  return states_ == o.states_ && start_ == o.start_ && initial_bar_steps_ == o.initial_bar_steps_ &&
         time_signature_first_ == o.time_signature_first_ &&
         bar_steps_by_time_signature_ == o.bar_steps_by_time_signature_ && vocab_size_ == o.vocab_size_;
}

// ---------------------------------------------------------------------------

GrammarCursor::GrammarCursor(const Grammar& grammar)
    : grammar_(&grammar), state_(grammar.start()), bar_steps_(grammar.initial_bar_steps()) {}

std::pair<int32_t, int32_t> GrammarCursor::open_ids(const GrammarTransition& t) const {
  if (t.effect != GrammarEffect::kPosition) return {t.first, t.last};
  // Positions rise within a bar and stay inside it.
  return {t.first + last_position_ + 1, std::min(t.last, t.first + bar_steps_ - 1)};
}

bool GrammarCursor::accepts(int32_t id) const {
  for (const GrammarTransition& t : grammar_->states()[static_cast<size_t>(state_)].transitions) {
    const auto [first, last] = open_ids(t);
    if (id >= first && id <= last) return true;
  }
  return false;
}

bool GrammarCursor::advance(int32_t id) {
  for (const GrammarTransition& t : grammar_->states()[static_cast<size_t>(state_)].transitions) {
    const auto [first, last] = open_ids(t);
    if (id < first || id > last) continue;
    switch (t.effect) {
      case GrammarEffect::kNone: break;
      case GrammarEffect::kBar: last_position_ = -1; break;
      case GrammarEffect::kTimeSignature:
        bar_steps_ = grammar_->bar_steps_by_time_signature()[static_cast<size_t>(id - grammar_->time_signature_first())];
        break;
      case GrammarEffect::kPosition: last_position_ = id - t.first; break;
    }
    state_ = t.next;
    return true;
  }
  return false;
}

void GrammarCursor::allowed(std::vector<uint8_t>& mask) const {
  mask.assign(static_cast<size_t>(grammar_->vocab_size()), 0);
  for (const GrammarTransition& t : grammar_->states()[static_cast<size_t>(state_)].transitions) {
    const auto [first, last] = open_ids(t);
    for (int32_t id = first; id <= last; ++id) mask[static_cast<size_t>(id)] = 1;
  }
}

bool GrammarCursor::complete() const { return grammar_->states()[static_cast<size_t>(state_)].transitions.empty(); }

const std::string& GrammarCursor::state_name() const { return grammar_->states()[static_cast<size_t>(state_)].name; }

}  // namespace kmidi::tokenizer
