#include "datasets/tokenizer/detail/GrammarJson.h"

#include <map>
#include <tuple>

#include "core/Errors.h"

// tokenizer.json "grammar", version 1 (keys in this order):
//   "format":    "kmidi.grammar"
//   "version":   1 (readers refuse newer versions)
//   "about":     the rules below in one paragraph, for whoever implements a runtime
//   "start":     name of the first state
//   "bar_steps": {"initial": steps of a bar before any TimeSig token,
//                 "time_signature_ids": [first, last] (absent without TimeSig tokens),
//                 "steps": steps of the bar of each TimeSig id, in id order}
//   "states":    [{"name": ..., "allow": [{"kind": "Pitch", "ids": [first, last],
//                                          "next": state name, "effect": ... (optional)}, ...]}, ...]
// A state with an empty "allow" list ends the piece (after EOS).

namespace kmidi::tokenizer::detail {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kGrammarVersion = 1;
constexpr const char* kGrammarFormat = "kmidi.grammar";
constexpr const char* kAbout =
    "A token id may come next when it lies in one of the current state's allow ranges [first, last] (inclusive); "
    "taking it moves to that range's next state. Start in 'start' with last_position = -1 and bar_steps = "
    "bar_steps.initial. Effects: 'bar' sets last_position = -1; 'time_signature' sets bar_steps to "
    "bar_steps.steps[id - bar_steps.time_signature_ids[0]]; 'position' allows only ids with "
    "last_position < id - first < bar_steps and then sets last_position = id - first. "
    "A state with no ranges is the end of the piece.";

TokenKind kind_of(const std::string& name, const std::string& where) {
  for (int k = 0; k <= static_cast<int>(TokenKind::kDuration); ++k) {
    if (name == kind_name(static_cast<TokenKind>(k))) return static_cast<TokenKind>(k);
  }
  throw DataError(where + ": unknown token kind '" + name + "'");
}

GrammarEffect effect_of(const std::string& name, const std::string& where) {
  for (GrammarEffect e : {GrammarEffect::kBar, GrammarEffect::kTimeSignature, GrammarEffect::kPosition}) {
    if (name == effect_name(e)) return e;
  }
  throw DataError(where + ": unknown effect '" + name + "'; expected bar, time_signature or position");
}

const Json& member(const Json& object, const char* key, const std::string& where) {
  if (!object.is_object() || !object.contains(key)) throw DataError(where + ": missing key '" + key + "'");
  return object[key];
}

int32_t integer(const Json& value, const std::string& where) {
  if (!value.is_number_integer()) throw DataError(where + " must be an integer, got " + value.dump());
  return value.get<int32_t>();
}

std::string text(const Json& value, const std::string& where) {
  if (!value.is_string()) throw DataError(where + " must be a string, got " + value.dump());
  return value.get<std::string>();
}

/// [first, last] with both integers.
std::pair<int32_t, int32_t> id_pair(const Json& value, const std::string& where) {
  if (!value.is_array() || value.size() != 2) throw DataError(where + " must be [first, last], got " + value.dump());
  return {integer(value[0], where + "[0]"), integer(value[1], where + "[1]")};
}

}  // namespace

Json grammar_to_json(const Grammar& g) {
  Json j = Json::object();
  j["format"] = kGrammarFormat;
  j["version"] = kGrammarVersion;
  j["about"] = kAbout;
  j["start"] = g.states()[static_cast<size_t>(g.start())].name;
  Json bar = Json::object();
  bar["initial"] = g.initial_bar_steps();
  const auto& steps = g.bar_steps_by_time_signature();
  if (!steps.empty()) {
    bar["time_signature_ids"] = {g.time_signature_first(),
                                 g.time_signature_first() + static_cast<int32_t>(steps.size()) - 1};
    bar["steps"] = steps;
  }
  j["bar_steps"] = bar;
  Json states = Json::array();
  for (const GrammarState& s : g.states()) {
    Json allow = Json::array();
    for (const GrammarTransition& t : s.transitions) {
      Json tj = Json::object();
      tj["kind"] = kind_name(t.kind);
      tj["ids"] = {t.first, t.last};
      tj["next"] = g.states()[static_cast<size_t>(t.next)].name;
      if (t.effect != GrammarEffect::kNone) tj["effect"] = effect_name(t.effect);
      allow.push_back(tj);
    }
    Json sj = Json::object();
    sj["name"] = s.name;
    sj["allow"] = allow;
    states.push_back(sj);
  }
  j["states"] = states;
  return j;
}

Grammar grammar_from_json(const Json& j, const std::string& origin, int32_t vocab_size) {
  const std::string where = origin + ": grammar";
  if (text(member(j, "format", where), where + ".format") != kGrammarFormat) {
    throw DataError(where + ".format is " + j["format"].dump() + ", expected \"" + kGrammarFormat + "\"");
  }
  const int32_t version = integer(member(j, "version", where), where + ".version");
  if (version > kGrammarVersion) {
    throw DataError(where + ".version " + std::to_string(version) + " was written by a newer kmidi; this build reads up to " +
                    std::to_string(kGrammarVersion));
  }
  if (version < 1) throw DataError(where + ".version " + std::to_string(version) + " is invalid; expected 1");

  const Json& bar = member(j, "bar_steps", where);
  const int32_t initial = integer(member(bar, "initial", where + ".bar_steps"), where + ".bar_steps.initial");
  int32_t ts_first = 0;
  std::vector<int32_t> steps;
  if (bar.contains("time_signature_ids")) {
    const auto [first, last] = id_pair(bar["time_signature_ids"], where + ".bar_steps.time_signature_ids");
    const Json& list = member(bar, "steps", where + ".bar_steps");
    if (!list.is_array() || list.size() != static_cast<size_t>(last - first + 1)) {
      throw DataError(where + ".bar_steps.steps must list one bar length per id of time_signature_ids");
    }
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(integer(list[i], where + ".bar_steps.steps[" + std::to_string(i) + "]"));
    ts_first = first;
  }

  const Json& states_json = member(j, "states", where);
  if (!states_json.is_array()) throw DataError(where + ".states must be a list");
  std::map<std::string, int32_t> index;
  for (size_t s = 0; s < states_json.size(); ++s) {
    const std::string name = text(member(states_json[s], "name", where + ".states[" + std::to_string(s) + "]"),
                                  where + ".states[" + std::to_string(s) + "].name");
    if (!index.emplace(name, static_cast<int32_t>(s)).second) throw DataError(where + ": state '" + name + "' is listed twice");
  }
  const auto state_index = [&](const std::string& name, const std::string& at) {
    const auto it = index.find(name);
    if (it == index.end()) throw DataError(at + " names no state: '" + name + "'");
    return it->second;
  };
  std::vector<GrammarState> states;
  for (size_t s = 0; s < states_json.size(); ++s) {
    GrammarState state;
    state.name = states_json[s]["name"].get<std::string>();
    const std::string at = where + ".states[" + state.name + "]";
    const Json& allow = member(states_json[s], "allow", at);
    if (!allow.is_array()) throw DataError(at + ".allow must be a list");
    for (size_t t = 0; t < allow.size(); ++t) {
      const std::string tat = at + ".allow[" + std::to_string(t) + "]";
      GrammarTransition tr;
      tr.kind = kind_of(text(member(allow[t], "kind", tat), tat + ".kind"), tat);
      std::tie(tr.first, tr.last) = id_pair(member(allow[t], "ids", tat), tat + ".ids");
      tr.next = state_index(text(member(allow[t], "next", tat), tat + ".next"), tat + ".next");
      if (allow[t].contains("effect")) tr.effect = effect_of(text(allow[t]["effect"], tat + ".effect"), tat);
      state.transitions.push_back(tr);
    }
    states.push_back(std::move(state));
  }
  const int32_t start = state_index(text(member(j, "start", where), where + ".start"), where + ".start");
  try {
    return Grammar(std::move(states), start, initial, ts_first, std::move(steps), vocab_size);
  } catch (const std::invalid_argument& e) {
    throw DataError(origin + ": " + e.what());
  }
}

}  // namespace kmidi::tokenizer::detail
