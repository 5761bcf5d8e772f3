#pragma once
// Small string helpers used across libraries.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kmidi::strings {

std::string trim(std::string_view s);
std::string to_lower(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);
bool ends_with(std::string_view s, std::string_view suffix);
std::vector<std::string> split(std::string_view s, char sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);

/// Levenshtein distance, for "did you mean" hints.
size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate nearest to `word` when it is plausibly a misspelling of it.
std::optional<std::string> closest(std::string_view word, const std::vector<std::string>& candidates);

/// Formats seconds as H:MM:SS (or M:SS under an hour).
std::string format_duration(double seconds);

}  // namespace kmidi::strings
