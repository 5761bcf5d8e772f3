#pragma once
// RFC 4180 CSV reading for labels and manifests (info.csv, label.csv, split
// files). Every error names the file and line; a row with the wrong number of
// fields is an error, never silently padded or truncated.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kmidi::csv {

struct Table {
  std::string source;                          ///< file name, for messages
  std::vector<std::string> header;             ///< first row
  std::vector<std::vector<std::string>> rows;  ///< data rows, each header.size() fields
  std::vector<size_t> lines;                   ///< 1-based line where each row starts

  /// Index of column `name`; throws DataError listing the columns when absent.
  size_t column(const std::string& name) const;
  bool has_column(const std::string& name) const;
  /// "file:line" of data row `row`, for messages about its values.
  std::string where(size_t row) const;
};

/// Parses CSV text: quoted fields with "" escapes and embedded newlines, CRLF
/// or LF line ends, an optional UTF-8 byte-order mark, blank lines skipped.
Table parse(std::string_view text, const std::string& source);

/// Reads and parses a file; throws DataError naming it when unreadable.
Table read(const std::string& path);

}  // namespace kmidi::csv
