#include "datasets/corpus/Csv.h"

#include "core/Errors.h"
#include "core/Files.h"

namespace kmidi::corpus {

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return static_cast<int>(i);
  }
  return -1;
}

std::string CsvTable::where(size_t row) const { return path + ":" + std::to_string(lines[row]); }

CsvTable parse_csv(const std::string& text, const std::string& path) {
  CsvTable t;
  t.path = path;
  size_t i = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
  int64_t line = 1;
  std::vector<std::string> row;
  std::string field;
  int64_t row_line = 1;
  bool row_has_content = false;
  auto end_row = [&] {
    row.push_back(std::move(field));
    field.clear();
    // A blank line is no row (a trailing newline, or spacing in hand-made files).
    if (row_has_content || row.size() > 1) {
      if (t.header.empty() && t.rows.empty() && t.lines.empty()) {
        t.header = std::move(row);
      } else {
        t.rows.push_back(std::move(row));
        t.lines.push_back(row_line);
      }
    }
    row.clear();
    row_has_content = false;
  };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"' && field.empty()) {
      // Quoted field: up to the closing quote; "" is a literal quote.
      const int64_t start_line = line;
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        if (text[i] == '\n') ++line;
        field += text[i++];
      }
      if (!closed) throw DataError(path + ":" + std::to_string(start_line) + ": unterminated quoted field");
      row_has_content = true;
      continue;
    }
    if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      row_has_content = true;
      ++i;
      continue;
    }
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      ++i;
      continue;
    }
    if (c == '\n') {
      end_row();
      ++line;
      row_line = line;
      ++i;
      continue;
    }
    field += c;
    row_has_content = true;
    ++i;
  }
  if (row_has_content || !row.empty()) end_row();
  if (t.header.empty()) throw DataError(path + ": empty file, expected a header row");
  return t;
}

CsvTable read_csv(const std::string& path) { return parse_csv(files::read_all(path), path); }

}  // namespace kmidi::corpus
