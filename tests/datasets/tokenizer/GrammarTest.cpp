// The grammar that constrains sampling: it accepts every sequence encode()
// writes for real POP909, EMOPIA and Groove MIDI files; every sequence it
// accepts decodes without a skipped token (decode() is the judge); corrupted
// sequences are refused where they break; and the JSON in tokenizer.json,
// applied by an independent Python reader (tests/reference/grammar_check.py),
// accepts, rejects and masks exactly as the C++ cursor does.

#include "datasets/tokenizer/Grammar.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "tests/support/TestSupport.h"

namespace kmidi::tokenizer {
namespace {

namespace fs = std::filesystem;
using Sequences = std::vector<std::vector<int32_t>>;

/// The piano tokenizer of configs/prepare_pop909_sample.yaml (and the EMOPIA configs).
TokenizerConfig piano_config() {
  TokenizerConfig c;
  c.drums = false;
  c.time_signatures = false;
  c.program_mode = "none";
  return c;
}

/// Every kind of token: drums, time signatures, a Program before every note.
TokenizerConfig full_config() {
  TokenizerConfig c;
  c.time_signature_fallback = "4/4";
  return c;
}

TokenizerConfig on_change_config() {
  TokenizerConfig c = full_config();
  c.program_mode = "on_change";
  return c;
}

std::vector<std::pair<std::string, TokenizerConfig>> configs() {
  return {{"piano", piano_config()}, {"full", full_config()}, {"on_change", on_change_config()}};
}

/// `limit` MIDI files evenly spread over a shared corpus folder, sorted.
std::vector<std::string> corpus_files(const std::string& folder, size_t limit) {
  std::vector<std::string> all;
  for (const auto& e : fs::recursive_directory_iterator(test::shared_data(folder))) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".mid" || ext == ".midi")) all.push_back(e.path().string());
  }
  std::sort(all.begin(), all.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < limit && !all.empty(); ++i) out.push_back(all[i * all.size() / std::min(limit, all.size())]);
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

/// Real pieces of POP909, EMOPIA and Groove MIDI (drums) encoded by `tok`.
Sequences real_sequences(const Tokenizer& tok) {
  Sequences out;
  for (const auto& [folder, limit] : std::vector<std::pair<std::string, size_t>>{
           {"pop909/POP909", 30}, {"emopia/EMOPIA_1.0/midis", 30}, {"groove-midi/groove", 10}}) {
    size_t encoded = 0;
    for (const std::string& path : corpus_files(folder, limit)) {
      out.push_back(tok.encode(midi::read_midi_file(path)));
      ++encoded;
    }
    EXPECT_GE(encoded, std::min<size_t>(limit, 10)) << folder;
  }
  return out;
}

/// Index of the first token the grammar refuses, or -1.
int64_t rejected_at(const Grammar& grammar, const std::vector<int32_t>& ids) {
  GrammarCursor cursor(grammar);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!cursor.advance(ids[i])) return static_cast<int64_t>(i);
  }
  return -1;
}

/// tests/reference/grammar_check.py's verdict on each sequence, from tokenizer.json alone.
std::vector<nlohmann::json> peer_verdicts(const Tokenizer& tok, const Sequences& sequences, const std::string& dir) {
  tok.save(dir + "/tokenizer.json");
  {
    std::ofstream f(dir + "/sequences.jsonl");
    for (const auto& ids : sequences) f << nlohmann::json(ids).dump() << "\n";
  }
  const auto r = test::run({test::python(), test::source_path("tests/reference/grammar_check.py"),
                            dir + "/tokenizer.json", dir + "/sequences.jsonl"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<nlohmann::json> out;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) out.push_back(nlohmann::json::parse(line));
  EXPECT_EQ(out.size(), sequences.size());
  return out;
}

/// Number of ids the cursor allows before each token (until the first refused one).
std::vector<int64_t> allowed_counts(const Grammar& grammar, const std::vector<int32_t>& ids) {
  GrammarCursor cursor(grammar);
  std::vector<uint8_t> mask;
  std::vector<int64_t> counts;
  for (int32_t id : ids) {
    cursor.allowed(mask);
    counts.push_back(std::count(mask.begin(), mask.end(), 1));
    if (!cursor.advance(id)) break;
  }
  return counts;
}

TEST(Grammar, AcceptsEveryEncodedRealPieceAndTheJsonPeerAgrees) {
  for (const auto& [name, config] : configs()) {
    SCOPED_TRACE(name);
    const Tokenizer tok(config);
    const Sequences real = real_sequences(tok);
    ASSERT_GE(real.size(), 50u);
    for (size_t i = 0; i < real.size(); ++i) {
      EXPECT_EQ(rejected_at(tok.grammar(), real[i]), -1) << "piece " << i << ": " << tok.describe(real[i].data(), 12);
      GrammarCursor cursor(tok.grammar());
      for (int32_t id : real[i]) cursor.advance(id);
      EXPECT_TRUE(cursor.complete()) << "piece " << i << " ends in state " << cursor.state_name();
    }
    const std::string dir = test::scratch_dir("grammar_real_" + name);
    const auto verdicts = peer_verdicts(tok, real, dir);
    for (size_t i = 0; i < verdicts.size(); ++i) {
      EXPECT_TRUE(verdicts[i].at("accepted").get<bool>()) << "piece " << i << " refused at "
                                                          << verdicts[i].at("rejected_at");
      EXPECT_TRUE(verdicts[i].at("complete").get<bool>()) << "piece " << i;
    }
  }
}

TEST(Grammar, EverySequenceItAllowsDecodesWithoutASkippedToken) {
  // Random walks through the grammar: at each step any allowed id, uniformly
  // (harder than any model, which prefers the common ones).
  for (const auto& [name, config] : configs()) {
    SCOPED_TRACE(name);
    const Tokenizer tok(config);
    Sequences walks;
    int64_t complete = 0, notes = 0;
    std::vector<uint8_t> mask;
    for (uint32_t seed = 1; seed <= 300; ++seed) {
      std::mt19937 rng(seed);
      GrammarCursor cursor(tok.grammar());
      std::vector<int32_t> ids;
      while (ids.size() < 400 && !cursor.complete()) {
        cursor.allowed(mask);
        std::vector<int32_t> open;
        for (size_t id = 0; id < mask.size(); ++id) {
          if (mask[id]) open.push_back(static_cast<int32_t>(id));
        }
        ASSERT_FALSE(open.empty()) << "dead end in state " << cursor.state_name();
        // No EOS in the first 100 tokens, so that pieces grow long.
        const int32_t id = open[std::uniform_int_distribution<size_t>(0, open.size() - 1)(rng)];
        if (id == tok.eos_id() && ids.size() < 100) continue;
        ASSERT_TRUE(cursor.advance(id));
        ids.push_back(id);
      }
      DecodeStats stats;
      tok.decode(ids, &stats);
      EXPECT_EQ(stats.invalid, 0) << "seed " << seed << ": " << tok.describe(ids.data(), ids.size());
      if (cursor.complete()) {
        ++complete;
        EXPECT_EQ(stats.incomplete_notes, 0) << "seed " << seed;
      }
      notes += stats.notes;
      walks.push_back(ids);
    }
    EXPECT_GT(complete, 20);
    EXPECT_GT(notes, 3000);
    // The Python reader of the JSON allows exactly as many ids at every step.
    const std::string dir = test::scratch_dir("grammar_walks_" + name);
    const auto verdicts = peer_verdicts(tok, walks, dir);
    for (size_t i = 0; i < verdicts.size() && i < walks.size(); ++i) {
      EXPECT_TRUE(verdicts[i].at("accepted").get<bool>()) << "walk " << i;
      EXPECT_EQ(verdicts[i].at("allowed_counts").get<std::vector<int64_t>>(), allowed_counts(tok.grammar(), walks[i]))
          << "walk " << i;
    }
  }
}

TEST(Grammar, RefusesCorruptedSequencesWhereTheyBreak) {
  const Tokenizer tok(full_config());
  const Vocabulary& v = tok.vocab();
  const auto id = [&](const std::string& name) {
    const int32_t found = v.find(name);
    EXPECT_GE(found, 0) << name;
    return found;
  };
  const std::vector<int32_t> song = tok.encode(midi::read_midi_file(test::source_path("data/pop909-sample/003.mid")));
  ASSERT_EQ(rejected_at(tok.grammar(), song), -1);
  const auto index_of = [&](TokenKind kind, size_t from) {
    for (size_t i = from; i < song.size(); ++i) {
      if (v.info(song[i]).kind == kind) return i;
    }
    ADD_FAILURE() << "no " << kind_name(kind) << " after " << from;
    return song.size();
  };

  struct Corruption {
    std::string what;
    std::vector<int32_t> ids;
    int64_t breaks_at;
  };
  std::vector<Corruption> cases;
  {  // Velocity and Duration swapped.
    auto ids = song;
    const size_t at = index_of(TokenKind::kVelocity, 0);
    std::swap(ids[at], ids[at + 1]);
    cases.push_back({"velocity after duration", ids, static_cast<int64_t>(at)});
  }
  {  // A second Position of a bar earlier than the first.
    size_t first = 0, second = 0;
    for (size_t i = 0; i < song.size() && second == 0; ++i) {
      if (v.info(song[i]).kind != TokenKind::kPosition || v.info(song[i]).value == 0) continue;
      for (size_t j = i + 1; j < song.size() && v.info(song[j]).kind != TokenKind::kBar; ++j) {
        if (v.info(song[j]).kind == TokenKind::kPosition) {
          first = i;
          second = j;
          break;
        }
      }
    }
    ASSERT_GT(second, 0u) << "no bar with two positions";
    auto ids = song;
    ids[second] = id("Position_" + std::to_string(v.info(song[first]).value - 1));
    cases.push_back({"position going back", ids, static_cast<int64_t>(second)});
  }
  {  // MASK after a note.
    auto ids = song;
    const size_t at = index_of(TokenKind::kDuration, 0) + 1;
    ids.insert(ids.begin() + static_cast<std::ptrdiff_t>(at), tok.mask_id());
    cases.push_back({"mask inside the piece", ids, static_cast<int64_t>(at)});
  }
  // Hand-written: a Position past the end of a 3/4 bar; a Tempo before any
  // Position; a Pitch without its Program (per_note); a note cut by a Bar.
  const int32_t bos = tok.bos_id(), bar = id("Bar"), eos = tok.eos_id();
  const int32_t note[] = {id("Program_0"), id("Pitch_60"), v.range(TokenKind::kVelocity).first, id("Duration_12")};
  cases.push_back({"position outside a 3/4 bar",
                   {bos, bar, id("TimeSig_3/4"), id("Position_36"), note[0], note[1], note[2], note[3], eos}, 3});
  cases.push_back({"tempo before a position", {bos, bar, v.range(TokenKind::kTempo).first, id("Position_0"), eos}, 2});
  cases.push_back({"pitch without program", {bos, bar, id("Position_0"), note[1], note[2], note[3], eos}, 3});
  cases.push_back({"note cut by a bar", {bos, bar, id("Position_0"), note[0], note[1], note[2], bar, eos}, 6});

  Sequences sequences;
  for (const Corruption& c : cases) sequences.push_back(c.ids);
  const std::string dir = test::scratch_dir("grammar_corrupt");
  const auto verdicts = peer_verdicts(tok, sequences, dir);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].what);
    EXPECT_EQ(rejected_at(tok.grammar(), cases[i].ids), cases[i].breaks_at);
    ASSERT_LT(i, verdicts.size());
    EXPECT_FALSE(verdicts[i].at("accepted").get<bool>());
    EXPECT_EQ(verdicts[i].at("rejected_at").get<int64_t>(), cases[i].breaks_at);
    // ... and each is a real decoding loss: decode() skips a token or drops a note.
    DecodeStats stats;
    tok.decode(cases[i].ids, &stats);
    EXPECT_GT(stats.invalid + stats.incomplete_notes, 0);
  }
}

TEST(Grammar, TravelsInTokenizerJsonAndFilesWithoutOneStillLoad) {
  const Tokenizer tok(piano_config());
  const auto json = nlohmann::ordered_json::parse(tok.to_json());
  ASSERT_TRUE(json.contains("grammar"));
  EXPECT_EQ(json["grammar"]["format"], "kmidi.grammar");
  EXPECT_TRUE(Tokenizer::from_json(tok.to_json(), "t.json").grammar() == tok.grammar());

  // A tokenizer.json written before the grammar existed (checked in, byte for
  // byte): it loads with the derived grammar and keeps its identity, the
  // sha256 of its text that shards and checkpoints recorded.
  const std::string old_text = files::read_all(test::source_path("tests/datasets/tokenizer/fixtures/piano_tokenizer_v1.json"));
  ASSERT_EQ(old_text.find("grammar"), std::string::npos);
  const Tokenizer old = Tokenizer::from_json(old_text, "old.json");
  EXPECT_TRUE(old.grammar() == tok.grammar());
  EXPECT_EQ(old.sha256(), hash::sha256_hex(old_text));
  EXPECT_EQ(tok.sha256(), hash::sha256_hex(old_text));

  const auto expect_refused = [](const nlohmann::ordered_json& j, const std::string& message) {
    try {
      Tokenizer::from_json(j.dump(), "tok.json");
      ADD_FAILURE() << "expected DataError: " << message;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  auto edited = json;
  edited["grammar"]["states"][1]["allow"][0]["ids"] = {5, 6};
  expect_refused(edited, "tok.json: stored grammar differs from the grammar rebuilt from its config; first at state 1");
  edited = json;
  edited["grammar"]["version"] = 2;
  expect_refused(edited, "tok.json: grammar.version 2 was written by a newer kmidi");
  edited = json;
  edited["grammar"]["states"][0]["allow"][0]["next"] = "nowhere";
  expect_refused(edited, "names no state: 'nowhere'");
  edited = json;
  edited["grammar"]["states"][0]["allow"][0]["ids"] = {0, 100000};
  expect_refused(edited, "outside the vocabulary");
  edited = json;
  edited["grammar"].erase("bar_steps");
  expect_refused(edited, "tok.json: grammar: missing key 'bar_steps'");
}

}  // namespace
}  // namespace kmidi::tokenizer
