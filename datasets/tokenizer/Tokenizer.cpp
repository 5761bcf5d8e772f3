#include "datasets/tokenizer/Tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "datasets/tokenizer/detail/ConfigJson.h"
#include "datasets/tokenizer/detail/GrammarJson.h"

// tokenizer.json, format_version 1 (a JSON object, keys in this order):
//   "format":         "kmidi.tokenizer"
//   "format_version": 1     (readers refuse newer versions)
//   "family":         "remi"
//   "config":         every TokenizerConfig field (see TokenizerConfig.h)
//   "vocab_size":     number of tokens
//   "special_tokens": {"PAD": 0, "BOS": 1, "EOS": 2, "MASK": 3, extras...}
//   "vocab":          token names by id ("PAD", "BOS", ..., "Bar", "Position_0", ...)
//   "grammar":        which token may follow which (detail/GrammarJson.cpp); optional:
//                     files written before it existed get the one derived from "config"
// Loading rebuilds the vocabulary and grammar from "config" and requires them to
// equal "vocab", "special_tokens" and "grammar": ids can never drift from their names.
// Bump kFormatVersion when a field's meaning changes, and keep reading v1.

namespace kmidi::tokenizer {
namespace {

using Json = nlohmann::ordered_json;

/// The config after the same validation as a YAML file gets.
TokenizerConfig validated(const TokenizerConfig& config) {
  TokenizerConfig copy = config;
  Json json = detail::config_to_json(copy);
  TokenizerConfig out;
  detail::config_from_json(json, "tokenizer config", out);
  return out;
}

/// One note ready to emit, sorted by (grid, order).
struct PendingNote {
  int64_t grid;
  int32_t order;  // instrument << 16 | pitch << 8 | velocity bin (see collect_notes)
  int32_t duration;
  int32_t program_id;  // -1: none
  int32_t pitch_id;
  int32_t velocity_id;
  int32_t duration_id;
  bool operator<(const PendingNote& o) const {
    if (grid != o.grid) return grid < o.grid;
    if (order != o.order) return order < o.order;
    return duration < o.duration;
  }
};

/// Sorts notes as operator< does. They come in start-tick order, so their
/// grid steps already ascend and only notes sharing a step need ordering:
/// sorting those small groups costs a fraction of sorting them all.
void sort_by_grid_then_order(std::vector<PendingNote>& notes) {
  const auto by_grid = [](const PendingNote& a, const PendingNote& b) { return a.grid < b.grid; };
  if (!std::is_sorted(notes.begin(), notes.end(), by_grid)) {
    std::sort(notes.begin(), notes.end());
    return;
  }
  for (auto group = notes.begin(); group != notes.end();) {
    auto end = group + 1;
    while (end != notes.end() && end->grid == group->grid) ++end;
    if (end - group > 1) std::sort(group, end);
    group = end;
  }
}

/// "; first at ..." naming where two grammars part, for the load error.
std::string first_difference(const Grammar& stored, const Grammar& rebuilt) {
  const auto& a = stored.states();
  const auto& b = rebuilt.states();
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (!(a[i] == b[i])) return "; first at state " + std::to_string(i) + " (stored '" + a[i].name + "', rebuilt '" + b[i].name + "')";
  }
  if (a.size() != b.size()) {
    return "; stored has " + std::to_string(a.size()) + " states, rebuilt " + std::to_string(b.size());
  }
  return "; the states agree, the bar lengths or start state differ";
}

struct GridTempo {
  int64_t grid;
  int bin;
};

struct GridTimeSignature {
  int64_t grid;
  int index;
};

/// Seconds on the tempo map of a decoded score.
class TempoClock {
 public:
  TempoClock(std::vector<midi::TempoChange>& tempos, int ticks_per_quarter) : tempos_(tempos), tpq_(ticks_per_quarter) {
    double seconds = 0.0;
    for (size_t i = 0; i < tempos_.size(); ++i) {
      if (i > 0) seconds += span(i - 1, tempos_[i].tick);
      tempos_[i].seconds = seconds;
    }
  }
  double seconds_at(int64_t tick) const {
    // Tempo changes are few; a binary search keeps long pieces linear overall.
    size_t lo = 0, hi = tempos_.size();
    while (hi - lo > 1) {
      const size_t mid = (lo + hi) / 2;
      if (tempos_[mid].tick <= tick) lo = mid; else hi = mid;
    }
    return tempos_[lo].seconds + span(lo, tick);
  }

 private:
  double span(size_t i, int64_t tick) const {
    return static_cast<double>(tick - tempos_[i].tick) * static_cast<double>(tempos_[i].microseconds_per_quarter) /
           (1e6 * tpq_);
  }
  std::vector<midi::TempoChange>& tempos_;
  int tpq_;
};

}  // namespace

void EncodeStats::add(const EncodeStats& o) {
  notes_in += o.notes_in;
  notes_encoded += o.notes_encoded;
  pitch_out_of_range += o.pitch_out_of_range;
  drums_out_of_range += o.drums_out_of_range;
  drums_dropped += o.drums_dropped;
  durations_clipped += o.durations_clipped;
  time_signatures_replaced += o.time_signatures_replaced;
  bars += o.bars;
  tokens += o.tokens;
}

Tokenizer::Tokenizer(const TokenizerConfig& config)
    : config_(validated(config)), vocab_(config_), grammar_(Grammar::derive(vocab_, config_)) {
  program_mode_ = config_.program_mode == "none"       ? ProgramMode::kNone
                  : config_.program_mode == "per_note" ? ProgramMode::kPerNote
                                                       : ProgramMode::kOnChange;
  sha256_ = hash::sha256_hex(json_text(false));
}

int32_t Tokenizer::special_id(const std::string& name) const {
  const auto& names = vocab_.special_names();
  const auto it = std::find(names.begin(), names.end(), name);
  return it == names.end() ? -1 : static_cast<int32_t>(it - names.begin());
}

std::string Tokenizer::describe(const int32_t* ids, size_t count) const {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (i) out += ' ';
    out += ids[i] >= 0 && ids[i] < vocab_size() ? vocab_.name(ids[i]) : "<" + std::to_string(ids[i]) + ">";
  }
  return out;
}

// ---------------------------------------------------------------------------
// tokenizer.json

std::string Tokenizer::to_json() const { return json_text(true); }

std::string Tokenizer::json_text(bool with_grammar) const {
  Json j = Json::object();
  j["format"] = kFormat;
  j["format_version"] = kFormatVersion;
  j["family"] = kFamily;
  TokenizerConfig copy = config_;
  j["config"] = detail::config_to_json(copy);
  j["vocab_size"] = vocab_size();
  Json specials = Json::object();
  for (size_t i = 0; i < vocab_.special_names().size(); ++i) specials[vocab_.special_names()[i]] = i;
  j["special_tokens"] = specials;
  j["vocab"] = vocab_.names();
  if (with_grammar) j["grammar"] = detail::grammar_to_json(grammar_);
  return j.dump(1) + "\n";
}

void Tokenizer::save(const std::string& path) const { files::write_atomic(path, to_json()); }

Tokenizer Tokenizer::load(const std::string& path) { return from_json(files::read_all(path), path); }

Tokenizer Tokenizer::from_json(const std::string& text, const std::string& origin) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw DataError(origin + ": not valid JSON: " + e.what());
  }
  auto require = [&](const char* key) -> const Json& {
    if (!j.is_object() || !j.contains(key)) throw DataError(origin + ": missing key '" + key + "'");
    return j[key];
  };
  const Json& format = require("format");
  if (!format.is_string() || format.get<std::string>() != kFormat) {
    throw DataError(origin + ": format is " + format.dump() + ", expected \"" + kFormat + "\"");
  }
  const Json& version = require("format_version");
  if (!version.is_number_integer()) throw DataError(origin + ": format_version must be an integer");
  const int64_t v = version.get<int64_t>();
  if (v > kFormatVersion) {
    throw DataError(origin + ": format_version " + std::to_string(v) + " was written by a newer kmidi; this build reads up to " +
                    std::to_string(kFormatVersion));
  }
  if (v < 1) throw DataError(origin + ": format_version " + std::to_string(v) + " is invalid; expected 1");
  const Json& family = require("family");
  if (!family.is_string() || family.get<std::string>() != kFamily) {
    throw DataError(origin + ": family is " + family.dump() + ", expected \"" + kFamily + "\"");
  }
  TokenizerConfig config;
  try {
    detail::config_from_json(require("config"), origin + " (config)", config);
  } catch (const config::ConfigError& e) {
    throw DataError(e.what());
  }
  Tokenizer tok(config);
  const Json& size = require("vocab_size");
  if (!size.is_number_integer() || size.get<int64_t>() != tok.vocab_size()) {
    throw DataError(origin + ": vocab_size is " + size.dump() + " but the vocabulary rebuilt from its config has " +
                    std::to_string(tok.vocab_size()) + " tokens");
  }
  const Json& vocab = require("vocab");
  if (!vocab.is_array()) throw DataError(origin + ": vocab must be a list of token names");
  const size_t n = std::min(vocab.size(), static_cast<size_t>(tok.vocab_size()));
  for (size_t i = 0; i < n; ++i) {
    const std::string& rebuilt = tok.vocab().names()[i];
    if (!vocab[i].is_string() || vocab[i].get<std::string>() != rebuilt) {
      throw DataError(origin + ": stored vocab differs from the vocab rebuilt from its config at id " + std::to_string(i) +
                      ": stored " + vocab[i].dump() + ", rebuilt \"" + rebuilt + "\"");
    }
  }
  if (vocab.size() != static_cast<size_t>(tok.vocab_size())) {
    throw DataError(origin + ": stored vocab has " + std::to_string(vocab.size()) + " tokens, the config rebuilds " +
                    std::to_string(tok.vocab_size()));
  }
  const Json& specials = require("special_tokens");
  if (!specials.is_object()) throw DataError(origin + ": special_tokens must be an object");
  for (const auto& [name, id] : specials.items()) {
    const int32_t expected = tok.special_id(name);
    if (expected < 0) throw DataError(origin + ": special_tokens names '" + name + "', which the config does not define");
    if (!id.is_number_integer() || id.get<int64_t>() != expected) {
      throw DataError(origin + ": special_tokens." + name + " is " + id.dump() + " but the config defines " + name +
                      " = " + std::to_string(expected));
    }
  }
  if (specials.size() != tok.vocab().special_names().size()) {
    throw DataError(origin + ": special_tokens lists " + std::to_string(specials.size()) + " tokens, the config defines " +
                    std::to_string(tok.vocab().special_names().size()));
  }
  if (j.contains("grammar")) {
    const Grammar stored = detail::grammar_from_json(j["grammar"], origin, tok.vocab_size());
    if (stored != tok.grammar()) {
      throw DataError(origin + ": stored grammar differs from the grammar rebuilt from its config" +
                      first_difference(stored, tok.grammar()));
    }
  }
  return tok;
}

// ---------------------------------------------------------------------------
// Encoding

int64_t Tokenizer::grid_of_tick(const midi::Score& score, int64_t tick) const {
  const int64_t p = config_.positions_per_quarter;
  if (!score.division.smpte) {
    const int64_t tpq = std::max(1, score.division.ticks_per_quarter);
    return (tick * p * 2 + tpq) / (2 * tpq);
  }
  // SMPTE clocks have no beats; like the reader, read them at 120 bpm (2 quarters per second).
  const double fps = score.division.frames_per_second == 29 ? 29.97 : score.division.frames_per_second;
  const double ticks_per_second = fps * std::max(1, score.division.ticks_per_frame);
  return std::llround(static_cast<double>(tick) / ticks_per_second * 2.0 * static_cast<double>(p));
}

std::vector<int32_t> Tokenizer::encode(const midi::Score& score, EncodeStats* stats) const {
  std::vector<int32_t> out;
  encode(score, out, stats);
  return out;
}

namespace {

/// Vocabulary ranges and options that encode() reads per note, looked up once per score.
struct EncodeContext {
  const Tokenizer& tok;
  const TokenizerConfig& config;
  const Vocabulary& vocab;
  bool programs;           ///< Program tokens at all (program_mode is not none)
  bool program_per_note;   ///< before every pitched note, not only on a change
  IdRange program_ids, pitch_ids, drum_ids, velocity_ids, duration_ids;
  int32_t max_duration;

  explicit EncodeContext(const Tokenizer& t)
      : tok(t),
        config(t.config()),
        vocab(t.vocab()),
        programs(config.program_mode != "none"),
        program_per_note(config.program_mode == "per_note"),
        program_ids(vocab.range(TokenKind::kProgram)),
        pitch_ids(vocab.range(TokenKind::kPitch)),
        drum_ids(vocab.range(TokenKind::kPitchDrum)),
        velocity_ids(vocab.range(TokenKind::kVelocity)),
        duration_ids(vocab.range(TokenKind::kDuration)),
        max_duration(vocab.max_duration_steps()) {}
};

/// The pitch and program ids of a note and its sort key, or false (counted) when it is dropped.
bool note_ids(const EncodeContext& c, const midi::Note& n, PendingNote& p, int32_t& instrument, EncodeStats& st) {
  p.program_id = -1;
  if (n.is_drum()) {
    if (!c.config.drums) { ++st.drums_dropped; return false; }
    if (n.pitch < c.config.drum_pitch_min || n.pitch > c.config.drum_pitch_max) { ++st.drums_out_of_range; return false; }
    p.pitch_id = c.drum_ids.first + (n.pitch - c.config.drum_pitch_min);
    instrument = 128;  // drums after every program at a position
    return true;
  }
  if (n.pitch < c.config.pitch_min || n.pitch > c.config.pitch_max) { ++st.pitch_out_of_range; return false; }
  p.pitch_id = c.pitch_ids.first + (n.pitch - c.config.pitch_min);
  instrument = 0;
  if (c.programs) {
    instrument = n.program & 127;
    p.program_id = c.program_ids.first + instrument;
  }
  return true;
}

/// The notes kept, quantized to the grid and sorted (grid, then instrument,
/// pitch, velocity bin, duration).
void collect_notes(const EncodeContext& c, const midi::Score& score, std::vector<PendingNote>& notes, EncodeStats& st) {
  notes.clear();
  notes.reserve(score.notes.size());
  st.notes_in = static_cast<int64_t>(score.notes.size());
  const bool smpte = score.division.smpte;
  const int64_t tpq = std::max(1, score.division.ticks_per_quarter);
  const int64_t grid = c.config.positions_per_quarter;
  for (const midi::Note& n : score.notes) {
    PendingNote p;
    int32_t instrument;
    if (!note_ids(c, n, p, instrument, st)) continue;
    const int64_t duration_ticks = std::max<int64_t>(0, n.end_tick - n.start_tick);
    int64_t steps = smpte ? c.tok.grid_of_tick(score, n.end_tick) - c.tok.grid_of_tick(score, n.start_tick)
                          : (duration_ticks * grid * 2 + tpq) / (2 * tpq);
    if (steps < 1) steps = 1;
    if (steps > c.max_duration) { steps = c.max_duration; ++st.durations_clipped; }
    const int velocity_bin = c.vocab.velocity_bin(n.velocity);
    p.grid = c.tok.grid_of_tick(score, n.start_tick);
    p.order = (instrument << 16) | ((n.pitch & 127) << 8) | velocity_bin;
    p.duration = static_cast<int32_t>(steps);
    p.velocity_id = c.velocity_ids.first + velocity_bin;
    p.duration_id = c.duration_ids.first + static_cast<int32_t>(steps) - 1;
    notes.push_back(p);
  }
  sort_by_grid_then_order(notes);
  st.notes_encoded = static_cast<int64_t>(notes.size());
}

/// Tempo changes on the grid: the last one at a step wins; only changes of
/// the binned value become tokens; none after the last onset.
void collect_tempos(const EncodeContext& c, const midi::Score& score, int64_t last_onset, std::vector<GridTempo>& tempos) {
  tempos.clear();
  if (!c.config.tempos) return;
  const double first_bpm = score.tempos.empty() ? 120.0 : score.tempos.front().bpm();
  tempos.push_back(GridTempo{0, c.vocab.tempo_bin(first_bpm)});
  for (size_t i = 1; i < score.tempos.size(); ++i) {
    const int64_t g = c.tok.grid_of_tick(score, score.tempos[i].tick);
    if (g > last_onset) break;
    const int bin = c.vocab.tempo_bin(score.tempos[i].bpm());
    if (g == tempos.back().grid) tempos.back().bin = bin;
    else tempos.push_back(GridTempo{g, bin});
  }
  // Drop entries equal to their predecessor (a change and its undo at one step).
  int last_bin = -1;
  size_t kept = 0;
  for (size_t i = 0; i < tempos.size(); ++i) {
    if (tempos[i].bin == last_bin) continue;
    last_bin = tempos[i].bin;
    tempos[kept++] = tempos[i];
  }
  tempos.resize(kept);
}

/// The allowed index of a time signature, or of the fallback (counted).
int resolve_time_signature(const EncodeContext& c, int numerator, int denominator, int64_t tick, EncodeStats& st) {
  const int index = c.vocab.time_signature_index(TimeSignatureValue{numerator, denominator});
  if (index >= 0) return index;
  if (c.config.time_signature_fallback.empty()) {
    throw DataError("time signature " + std::to_string(numerator) + "/" + std::to_string(denominator) + " at tick " +
                    std::to_string(tick) + " is not in tokenizer.allowed_time_signatures and no time_signature_fallback is set");
  }
  TimeSignatureValue fallback;
  parse_time_signature(c.config.time_signature_fallback, fallback);
  ++st.time_signatures_replaced;
  return c.vocab.time_signature_index(fallback);
}

/// Time signatures on the grid, resolved to allowed indices; returns the index
/// in force before the first of them (-1 when one starts at step 0).
int collect_time_signatures(const EncodeContext& c, const midi::Score& score, std::vector<GridTimeSignature>& signatures,
                            EncodeStats& st) {
  signatures.clear();
  if (!c.config.time_signatures) return 0;  // index 0 is 4/4
  for (const midi::TimeSignature& ts : score.time_signatures) {
    signatures.push_back(GridTimeSignature{c.tok.grid_of_tick(score, ts.tick), -1});
    signatures.back().index = resolve_time_signature(c, ts.numerator, ts.denominator, ts.tick, st);
  }
  if (signatures.empty() || signatures.front().grid > 0) return resolve_time_signature(c, 4, 4, 0, st);  // MIDI's default
  return -1;
}

/// How far emission has gone through the sorted notes and tempo changes.
struct EmitCursor {
  size_t note = 0, tempo = 0;
  int32_t last_program = -1;
};

/// Emits the Position, Tempo and note tokens of one bar [bar_start, bar_end).
EmitCursor emit_bar_events(const EncodeContext& c, const std::vector<PendingNote>& notes,
                           const std::vector<GridTempo>& tempos, EmitCursor cursor, int64_t bar_start, int64_t bar_end,
                           std::vector<int32_t>& out) {
  const int32_t position_base = c.vocab.range(TokenKind::kPosition).first;
  const int32_t tempo_base = c.vocab.range(TokenKind::kTempo).first;
  size_t ni = cursor.note, ti = cursor.tempo;
  int32_t last_program = cursor.last_program;
  int64_t last_position = -1;
  while (true) {
    int64_t next = INT64_MAX;
    if (ni < notes.size()) next = notes[ni].grid;
    if (ti < tempos.size()) next = std::min(next, tempos[ti].grid);
    if (next >= bar_end) break;
    if (next != last_position) {
      out.push_back(position_base + static_cast<int32_t>(next - bar_start));
      last_position = next;
    }
    if (ti < tempos.size() && tempos[ti].grid == next) out.push_back(tempo_base + tempos[ti++].bin);
    for (; ni < notes.size() && notes[ni].grid == next; ++ni) {
      const PendingNote& n = notes[ni];
      if (n.program_id >= 0 && (c.program_per_note || n.program_id != last_program)) {
        out.push_back(n.program_id);
        last_program = n.program_id;
      }
      out.push_back(n.pitch_id);
      out.push_back(n.velocity_id);
      out.push_back(n.duration_id);
    }
  }
  return EmitCursor{ni, ti, last_program};
}

/// BOS, then one Bar (with its TimeSig where the signature changes) and its
/// events per bar until every note and tempo change is out, then EOS.
void emit_tokens(const EncodeContext& c, const std::vector<PendingNote>& notes, const std::vector<GridTempo>& tempos,
                 const std::vector<GridTimeSignature>& signatures, int current_ts, std::vector<int32_t>& out,
                 EncodeStats& st) {
  const int32_t bar_id = c.vocab.range(TokenKind::kBar).first;
  const int32_t ts_base = c.vocab.range(TokenKind::kTimeSignature).first;
  const int64_t last_onset = notes.empty() ? 0 : notes.back().grid;
  out.reserve(out.size() + 4 * notes.size() + 16);
  out.push_back(c.tok.bos_id());
  EmitCursor cursor;
  size_t si = 0;
  int emitted_ts = -1;
  int64_t bar_start = 0;
  while (cursor.note < notes.size() || cursor.tempo < tempos.size()) {
    while (si < signatures.size() && signatures[si].grid <= bar_start) current_ts = signatures[si++].index;
    if (++st.bars > c.config.max_bars) {
      throw DataError("the score is longer than tokenizer.max_bars (" + std::to_string(c.config.max_bars) +
                      " bars); last note onset at grid step " + std::to_string(last_onset));
    }
    out.push_back(bar_id);
    if (c.config.time_signatures && current_ts != emitted_ts) {
      out.push_back(ts_base + current_ts);
      emitted_ts = current_ts;
    }
    const int64_t bar_end = bar_start + c.vocab.bar_steps(c.vocab.time_signature(current_ts));
    cursor = emit_bar_events(c, notes, tempos, cursor, bar_start, bar_end, out);
    bar_start = bar_end;
  }
  out.push_back(c.tok.eos_id());
}

}  // namespace

void Tokenizer::encode(const midi::Score& score, std::vector<int32_t>& out, EncodeStats* stats) const {
  EncodeStats st;
  out.clear();
  const EncodeContext context(*this);
  // Buffers live per thread so that a worker encoding thousands of files
  // allocates only while they grow.
  thread_local std::vector<PendingNote> notes;
  thread_local std::vector<GridTempo> tempos;
  thread_local std::vector<GridTimeSignature> signatures;
  collect_notes(context, score, notes, st);
  collect_tempos(context, score, notes.empty() ? 0 : notes.back().grid, tempos);
  const int first_ts = collect_time_signatures(context, score, signatures, st);
  emit_tokens(context, notes, tempos, signatures, first_ts, out, st);
  st.tokens = static_cast<int64_t>(out.size());
  if (stats) stats->add(st);
}

// ---------------------------------------------------------------------------
// Decoding

namespace {

/// A complete note read from the ids.
struct DecodedNote {
  int64_t grid;
  int32_t steps;
  int pitch, velocity, instrument;  // instrument: program, or 128 for drums
};

/// The grammar's state machine over the ids: collects notes, tempo changes
/// and time signatures on the grid, skipping (and counting) what breaks it.
class TokenReader {
  const Tokenizer& tok_;
  const Vocabulary& vocab_;
  DecodeStats& st_;

 public:
  TokenReader(const Tokenizer& tok, DecodeStats& st)
      : tok_(tok),
        vocab_(tok.vocab()),
        st_(st),
        // Bars before any TimeSig token are 4/4 (MIDI's default), or the first
        // allowed signature when 4/4 is not allowed.
        default_ts(std::max(0, vocab_.time_signature_index(TimeSignatureValue{4, 4}))),
        bar_steps(vocab_.bar_steps(vocab_.time_signature(default_ts))),
        program_(tok.config().program_mode == "none" ? tok.config().decode_program : -1) {}

  void read(const int32_t* ids, size_t count) {
    for (size_t i = 0; i < count; ++i) {
      const int32_t id = ids[i];
      if (id < 0 || id >= tok_.vocab_size()) {
        ++st_.out_of_vocabulary;
        invalid();
      } else if (id == tok_.eos_id()) {
        st_.after_eos = static_cast<int64_t>(count - i - 1);
        break;
      } else {
        on_token(id, vocab_.info(id));
      }
    }
    drop_pending();
    st_.notes = static_cast<int64_t>(notes.size());
  }

  std::vector<DecodedNote> notes;
  std::vector<GridTempo> tempos;
  std::vector<GridTimeSignature> signatures;
  // What read() found, for decode() to build the score from.
  bool started = false;  ///< a Bar was seen
  int64_t bar_start = 0;
  const int default_ts;
  int64_t bar_steps;

 private:
  void on_token(int32_t id, const TokenInfo& t) {
    switch (t.kind) {
      case TokenKind::kSpecial:
        if (id == tok_.pad_id()) ++st_.pad;
        else if (!(id == tok_.bos_id() && !started)) invalid();
        break;
      case TokenKind::kBar: on_bar(); break;
      case TokenKind::kTimeSignature: on_time_signature(t.value); break;
      case TokenKind::kPosition: on_position(t.value); break;
      case TokenKind::kTempo: on_tempo(t.value); break;
      case TokenKind::kProgram:
        drop_pending();
        program_ = t.value;
        break;
      case TokenKind::kPitch:
      case TokenKind::kPitchDrum: on_pitch(t.value, t.kind == TokenKind::kPitchDrum); break;
      case TokenKind::kVelocity: on_velocity(t.value); break;
      case TokenKind::kDuration: on_duration(t.value); break;
    }
  }

  void on_bar() {
    drop_pending();
    if (started) bar_start += bar_steps;
    started = true;
    bar_fresh_ = true;
    position_ = -1;
  }

  void on_time_signature(int ts) {
    if (!started || !bar_fresh_) return invalid();
    bar_steps = vocab_.bar_steps(vocab_.time_signature(ts));
    if (!signatures.empty() && signatures.back().grid == bar_start) signatures.back().index = ts;
    else signatures.push_back(GridTimeSignature{bar_start, ts});
    bar_fresh_ = false;
  }

  void on_position(int step) {
    if (!started || step >= bar_steps || bar_start + step < position_) return invalid();
    drop_pending();
    position_ = bar_start + step;
    bar_fresh_ = false;
  }

  void on_tempo(int bin) {
    if (position_ < 0) return invalid();
    if (!tempos.empty() && tempos.back().grid == position_) tempos.back().bin = bin;
    else tempos.push_back(GridTempo{position_, bin});
  }

  void on_pitch(int pitch, bool drum) {
    if (position_ < 0 || (!drum && program_ < 0)) return invalid();
    drop_pending();
    pending_ = DecodedNote{position_, 0, pitch, 0, drum ? 128 : program_};
    stage_ = 1;
  }

  void on_velocity(int velocity) {
    if (stage_ != 1) return invalid();
    pending_.velocity = velocity;
    stage_ = 2;
  }

  void on_duration(int steps) {
    if (stage_ != 2) return invalid();
    pending_.steps = steps;
    notes.push_back(pending_);
    stage_ = 0;
  }

  void drop_pending() {
    if (stage_ != 0) ++st_.incomplete_notes;
    stage_ = 0;
  }
  void invalid() {
    ++st_.invalid;
    drop_pending();
  }

  bool bar_fresh_ = false;  // no Position (or TimeSig) yet in this bar
  int64_t position_ = -1;   // absolute grid step of the last Position in this bar
  int program_;
  int stage_ = 0;  // 0: no note; 1: have pitch; 2: have pitch and velocity
  DecodedNote pending_{};
};

/// Tempo map (120 bpm until the first Tempo token) and time signatures of the decoded score.
void set_timeline(const Vocabulary& vocab, const TokenReader& r, int64_t ticks_per_step, midi::Score& score) {
  if (r.tempos.empty() || r.tempos.front().grid > 0) score.tempos.push_back(midi::TempoChange{0, 500000, 0.0});
  for (const GridTempo& g : r.tempos) {
    const double bpm = vocab.tempo_value(g.bin);
    score.tempos.push_back(midi::TempoChange{g.grid * ticks_per_step, std::llround(60'000'000.0 / bpm), 0.0});
  }
  if (r.signatures.empty() || r.signatures.front().grid > 0) {
    const TimeSignatureValue& first = vocab.time_signature(r.default_ts);
    score.time_signatures.push_back(midi::TimeSignature{0, first.numerator, first.denominator});
  }
  for (const GridTimeSignature& g : r.signatures) {
    const TimeSignatureValue& v = vocab.time_signature(g.index);
    score.time_signatures.push_back(midi::TimeSignature{g.grid * ticks_per_step, v.numerator, v.denominator});
  }
}

/// Track and channel of each instrument (program 0..127, drums 128).
struct TrackMap {
  int track_of[129];
  int channel_of[129];
};

/// One track per instrument in order of first appearance; programs take
/// channels 0..15 except 9 (wrapping after 15 instruments), drums channel 9.
TrackMap add_tracks(const std::vector<DecodedNote>& notes, midi::Score& score) {
  TrackMap map;
  std::fill(std::begin(map.track_of), std::end(map.track_of), -1);
  int next_channel = 0;
  for (const DecodedNote& n : notes) {
    if (map.track_of[n.instrument] >= 0) continue;
    map.track_of[n.instrument] = static_cast<int>(score.track_names.size());
    if (n.instrument == 128) {
      map.channel_of[n.instrument] = 9;
      score.track_names.push_back("Drums");
    } else {
      if (next_channel == 9) ++next_channel;
      map.channel_of[n.instrument] = next_channel;
      next_channel = (next_channel + 1) % 16;
      score.track_names.push_back("Program " + std::to_string(n.instrument));
      score.programs.push_back(
          midi::ProgramChange{0, 0.0, map.channel_of[n.instrument], map.track_of[n.instrument], n.instrument});
    }
  }
  score.num_tracks = static_cast<int>(score.track_names.size());
  return map;
}

/// The notes with ticks, beats and seconds, sorted as the MIDI reader sorts
/// them; returns the last tick of the last note.
int64_t add_notes(const std::vector<DecodedNote>& notes, const TrackMap& tracks, int64_t ticks_per_step, int64_t tpq,
                  midi::Score& score) {
  TempoClock clock(score.tempos, static_cast<int>(tpq));
  score.notes.reserve(notes.size());
  int64_t end_tick = 0;
  for (const DecodedNote& d : notes) {
    midi::Note n;
    n.pitch = d.pitch;
    n.velocity = d.velocity;
    n.channel = tracks.channel_of[d.instrument];
    n.program = d.instrument == 128 ? 0 : d.instrument;
    n.track = tracks.track_of[d.instrument];
    n.start_tick = d.grid * ticks_per_step;
    n.end_tick = (d.grid + d.steps) * ticks_per_step;
    n.start_beat = static_cast<double>(n.start_tick) / static_cast<double>(tpq);
    n.end_beat = static_cast<double>(n.end_tick) / static_cast<double>(tpq);
    n.start_s = clock.seconds_at(n.start_tick);
    n.end_s = clock.seconds_at(n.end_tick);
    end_tick = std::max(end_tick, n.end_tick);
    score.notes.push_back(n);
  }
  std::stable_sort(score.notes.begin(), score.notes.end(), [](const midi::Note& a, const midi::Note& b) {
    if (a.start_tick != b.start_tick) return a.start_tick < b.start_tick;
    if (a.track != b.track) return a.track < b.track;
    if (a.channel != b.channel) return a.channel < b.channel;
    return a.pitch < b.pitch;
  });
  return end_tick;
}

}  // namespace

midi::Score Tokenizer::decode(const int32_t* ids, size_t count, DecodeStats* stats) const {
  DecodeStats st;
  st.tokens = static_cast<int64_t>(count);
  TokenReader reader(*this, st);
  reader.read(ids, count);

  const int64_t tpq = config_.decode_ticks_per_quarter;
  const int64_t ticks_per_step = tpq / config_.positions_per_quarter;
  midi::Score score;
  score.format = 1;
  score.division.ticks_per_quarter = static_cast<int>(tpq);
  set_timeline(vocab_, reader, ticks_per_step, score);
  const TrackMap tracks = add_tracks(reader.notes, score);
  const int64_t notes_end = add_notes(reader.notes, tracks, ticks_per_step, tpq, score);
  const int64_t bars_end = reader.started ? (reader.bar_start + reader.bar_steps) * ticks_per_step : 0;
  score.end_tick = std::max(bars_end, notes_end);
  if (stats) *stats = st;
  return score;
}

}  // namespace kmidi::tokenizer
