#pragma once
// Archive extraction through libarchive (zip, tar, tar.gz), refusing entries
// that would land outside the target folder. libarchive stays in Extract.cpp.

#include <cstdint>
#include <string>

namespace kmidi::fetch {

struct ExtractSummary {
  int64_t files = 0;
  int64_t bytes = 0;
};

/// Extracts every entry of `archive_path` under the existing folder `dir`
/// (absolute, without ".." parts).
/// Throws DataError naming the archive (and the entry) when it is corrupt,
/// truncated, or holds an absolute path, a ".." or a link leaving `dir`; what
/// was written so far stays in `dir` for the caller to remove.
ExtractSummary extract_archive(const std::string& archive_path, const std::string& dir);

}  // namespace kmidi::fetch
