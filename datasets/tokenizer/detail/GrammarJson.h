#pragma once
// The grammar's JSON form inside tokenizer.json (layout in GrammarJson.cpp).

#include <nlohmann/json.hpp>

#include <string>

#include "datasets/tokenizer/Grammar.h"

namespace kmidi::tokenizer::detail {

nlohmann::ordered_json grammar_to_json(const Grammar& grammar);

/// Parses the "grammar" object for a vocabulary of `vocab_size` tokens.
/// Throws DataError prefixed by `origin` naming the first bad key.
Grammar grammar_from_json(const nlohmann::ordered_json& object, const std::string& origin, int32_t vocab_size);

}  // namespace kmidi::tokenizer::detail
