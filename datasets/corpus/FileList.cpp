#include "datasets/corpus/FileList.h"

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>

#include "core/Errors.h"
#include "core/Strings.h"

namespace fs = std::filesystem;

namespace kmidi::corpus {
namespace {

bool match_segments(const std::vector<std::string>& pattern, size_t p, const std::vector<std::string>& path, size_t s) {
  if (p == pattern.size()) return s == path.size();
  if (pattern[p] == "**") {
    for (size_t k = s; k <= path.size(); ++k) {
      if (match_segments(pattern, p + 1, path, k)) return true;
    }
    return false;
  }
  if (s == path.size()) return false;
  if (::fnmatch(pattern[p].c_str(), path[s].c_str(), FNM_CASEFOLD | FNM_PERIOD) != 0) return false;
  return match_segments(pattern, p + 1, path, s + 1);
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view relative_path) {
  return match_segments(strings::split(pattern, '/'), 0, strings::split(relative_path, '/'), 0);
}

std::vector<std::string> list_files(const std::string& root, const std::vector<std::string>& include,
                                    const std::vector<std::string>& exclude) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw DataError(root + ": not a folder (corpus.root)");
  std::vector<std::string> out;
  fs::recursive_directory_iterator it(root, fs::directory_options::follow_directory_symlink, ec);
  if (ec) throw DataError(root + ": cannot list: " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw DataError(root + ": cannot list: " + ec.message());
    if (!it->is_regular_file(ec)) continue;
    // Lexical: fs::relative would resolve every path's links (a readlink per
    // component), which made listing 100k files take seconds.
    const std::string rel = it->path().lexically_relative(root).generic_string();
    if (rel.empty() || rel.compare(0, 2, "..") == 0) continue;
    const auto matches = [&](const std::string& p) { return glob_match(p, rel); };
    if (!std::any_of(include.begin(), include.end(), matches)) continue;
    if (std::any_of(exclude.begin(), exclude.end(), matches)) continue;
    out.push_back(rel);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace kmidi::corpus
