#pragma once
// A config::Section as a JSON object (for files that embed their config, like
// tokenizer.json), and back. Reading goes through config::Document (JSON is
// YAML), so the same validation and messages apply.

#include <nlohmann/json.hpp>

#include <string>

#include "core/Config.h"

namespace kmidi::tokenizer::detail {

/// The section's fields, in declaration order.
nlohmann::ordered_json config_to_json(config::Section& section);

/// Fills `section` from a JSON object; throws config::ConfigError prefixed by `origin`.
void config_from_json(const nlohmann::ordered_json& object, const std::string& origin, config::Section& section);

}  // namespace kmidi::tokenizer::detail
