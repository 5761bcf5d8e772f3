#pragma once
// Lists a corpus folder: every regular file whose path relative to the root
// matches an include pattern and no exclude pattern.
//
// Patterns are '/'-separated and case-insensitive: '*' and '?' and [...]
// match within one path segment, '**' matches any number of segments
// (including none). "**/*.mid" matches "a.mid" and "x/y/a.MID". As in a
// shell, a name starting with '.' (e.g. macOS "._a.mid" resource forks)
// matches only a pattern segment that starts with '.'.

#include <string>
#include <string_view>
#include <vector>

namespace kmidi::corpus {

/// Whether `relative_path` ('/'-separated) matches `pattern`.
bool glob_match(std::string_view pattern, std::string_view relative_path);

/// Relative paths ('/'-separated, sorted bytewise) of the matching regular
/// files under `root`, following symbolic links. Throws DataError when
/// `root` is not a readable folder.
std::vector<std::string> list_files(const std::string& root, const std::vector<std::string>& include,
                                    const std::vector<std::string>& exclude);

}  // namespace kmidi::corpus
