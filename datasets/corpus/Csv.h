#pragma once
// A small RFC 4180 CSV reader for manifests and split lists: quoted fields
// (commas, newlines and doubled quotes inside), CRLF or LF, a UTF-8 BOM.
// Rows keep their line numbers so that every complaint can name its line.

#include <cstdint>
#include <string>
#include <vector>

namespace kmidi::corpus {

struct CsvTable {
  std::string path;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  ///< as read; field counts may differ from the header
  std::vector<int64_t> lines;                  ///< 1-based line where each row starts (header is line 1)
  /// Index of a header column, or -1.
  int column(const std::string& name) const;
  /// "path:line" of row `row`.
  std::string where(size_t row) const;
};

/// Parses CSV text; `path` names it in messages. Throws DataError
/// "path:line: unterminated quoted field" for a quote that never closes, and
/// "path: empty file, expected a header row" for no header.
CsvTable parse_csv(const std::string& text, const std::string& path);
/// Reads and parses a file (DataError naming it when unreadable).
CsvTable read_csv(const std::string& path);

}  // namespace kmidi::corpus
