#include "core/Csv.h"

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Strings.h"

namespace kmidi::csv {

size_t Table::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return i;
  }
  throw DataError(source + ": missing column '" + name + "'; columns are " + strings::join(header, ", "));
}

bool Table::has_column(const std::string& name) const {
  for (const auto& h : header) {
    if (h == name) return true;
  }
  return false;
}

std::string Table::where(size_t row) const { return source + ":" + std::to_string(lines.at(row)); }

Table parse(std::string_view text, const std::string& source) {
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  Table table;
  table.source = source;
  std::vector<std::string> record;
  std::string field;
  size_t line = 1, record_line = 1;
  bool in_quotes = false, field_was_quoted = false, record_has_content = false;

  auto end_field = [&] {
    record.push_back(std::move(field));
    field.clear();
    field_was_quoted = false;
  };
  auto end_record = [&] {
    end_field();
    const bool blank = !record_has_content && record.size() == 1 && record[0].empty();
    if (!blank) {
      if (table.header.empty()) {
        table.header = std::move(record);
      } else if (record.size() != table.header.size()) {
        throw DataError(source + ":" + std::to_string(record_line) + ": expected " +
                        std::to_string(table.header.size()) + " fields, got " + std::to_string(record.size()));
      } else {
        table.rows.push_back(std::move(record));
        table.lines.push_back(record_line);
      }
    }
    record.clear();
    record_has_content = false;
  };

  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    switch (c) {
      case '"':
        if (!field.empty() || field_was_quoted) {
          throw DataError(source + ":" + std::to_string(line) + ": stray quote inside an unquoted field");
        }
        in_quotes = true;
        field_was_quoted = true;
        record_has_content = true;
        break;
      case ',':
        end_field();
        record_has_content = true;
        break;
      case '\r':
        if (i + 1 < text.size() && text[i + 1] == '\n') break;  // CRLF: the LF ends the record
        [[fallthrough]];
      case '\n':
        end_record();
        ++line;
        record_line = line;
        break;
      default:
        if (field_was_quoted) {
          throw DataError(source + ":" + std::to_string(line) + ": text after a closing quote");
        }
        field += c;
        record_has_content = true;
    }
  }
  if (in_quotes) throw DataError(source + ":" + std::to_string(record_line) + ": unterminated quoted field");
  if (!field.empty() || !record.empty() || record_has_content) end_record();
  if (table.header.empty()) throw DataError(source + ": empty CSV file (no header row)");
  return table;
}

Table read(const std::string& path) { return parse(files::read_all(path), path); }

}  // namespace kmidi::csv
