#include "core/Hostlist.h"

#include <cstdint>
#include <string>

#include "core/Errors.h"

namespace kmidi::slurm {
namespace {

// A job never spans more nodes than this; a larger expansion is a typo such
// as "node[1-1000000000]" and would only exhaust memory.
constexpr size_t kMaxHosts = 1u << 20;

[[noreturn]] void fail(std::string_view expression, size_t offset, const std::string& what) {
  throw UsageError("hostlist '" + std::string(expression) + "': " + what + " at offset " +
                   std::to_string(offset));
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// Reads the digits starting at `pos`; returns them (possibly empty) and moves `pos` past them.
std::string read_digits(std::string_view text, size_t& pos) {
  const size_t start = pos;
  while (pos < text.size() && is_digit(text[pos])) ++pos;
  return std::string(text.substr(start, pos - start));
}

uint64_t to_number(std::string_view expression, size_t offset, const std::string& digits) {
  if (digits.empty()) fail(expression, offset, "expected a number");
  if (digits.size() > 18) fail(expression, offset, "number '" + digits + "' is too long");
  return std::stoull(digits);
}

std::string pad(uint64_t value, size_t width) {
  std::string text = std::to_string(value);
  if (text.size() < width) text.insert(0, width - text.size(), '0');
  return text;
}

/// Expands the inside of one bracket group, "01-04,07", into its values.
/// `base` is the group's offset in `expression`, for messages.
std::vector<std::string> expand_ranges(std::string_view expression, std::string_view group, size_t base) {
  std::vector<std::string> values;
  size_t pos = 0;
  while (true) {
    const size_t lo_at = pos;
    const std::string lo_text = read_digits(group, pos);
    const uint64_t lo = to_number(expression, base + lo_at, lo_text);
    uint64_t hi = lo;
    if (pos < group.size() && group[pos] == '-') {
      ++pos;
      const size_t hi_at = pos;
      hi = to_number(expression, base + hi_at, read_digits(group, pos));
      if (hi < lo) {
        fail(expression, base + hi_at,
             "range " + lo_text + "-" + std::to_string(hi) + " runs backwards");
      }
    }
    if (hi - lo >= kMaxHosts || values.size() + (hi - lo + 1) > kMaxHosts) {
      fail(expression, base + lo_at, "expands to more than " + std::to_string(kMaxHosts) + " hosts");
    }
    for (uint64_t v = lo; v <= hi; ++v) values.push_back(pad(v, lo_text.size()));
    if (pos == group.size()) break;
    if (group[pos] != ',') {
      fail(expression, base + pos, std::string("unexpected '") + group[pos] + "' in a bracket range");
    }
    ++pos;
  }
  return values;
}

/// Expands one comma-free item, "rack[1-2]-node[01-02]", into host names.
void expand_item(std::string_view expression, std::string_view item, size_t base,
                 std::vector<std::string>& hosts) {
  if (item.empty()) fail(expression, base, "empty host name");
  std::vector<std::string> partial{""};
  size_t pos = 0;
  while (pos < item.size()) {
    const char c = item[pos];
    if (c == ']') fail(expression, base + pos, "']' without a matching '['");
    if (c != '[') {
      const size_t next = item.find_first_of("[]", pos);
      const std::string_view literal = item.substr(pos, next == std::string_view::npos ? item.size() - pos : next - pos);
      for (auto& p : partial) p.append(literal);
      pos += literal.size();
      continue;
    }
    const size_t close = item.find(']', pos + 1);
    if (close == std::string_view::npos) fail(expression, base + pos, "'[' is never closed");
    const size_t nested = item.find('[', pos + 1);
    if (nested != std::string_view::npos && nested < close) fail(expression, base + nested, "nested '['");
    const auto values = expand_ranges(expression, item.substr(pos + 1, close - pos - 1), base + pos + 1);
    if (partial.size() * values.size() > kMaxHosts) {
      fail(expression, base + pos, "expands to more than " + std::to_string(kMaxHosts) + " hosts");
    }
    std::vector<std::string> grown;
    grown.reserve(partial.size() * values.size());
    for (const auto& p : partial) {
      for (const auto& v : values) grown.push_back(p + v);
    }
    partial = std::move(grown);
    pos = close + 1;
  }
  if (hosts.size() + partial.size() > kMaxHosts) {
    fail(expression, base, "expands to more than " + std::to_string(kMaxHosts) + " hosts");
  }
  hosts.insert(hosts.end(), partial.begin(), partial.end());
}

}  // namespace

std::vector<std::string> expand_hostlist(std::string_view expression) {
  std::vector<std::string> hosts;
  if (expression.empty()) throw UsageError("hostlist '' is empty; expected e.g. 'node[01-04],gpu5'");
  // Items are separated by commas outside brackets; commas inside separate ranges.
  size_t start = 0;
  int depth = 0;
  for (size_t i = 0; i <= expression.size(); ++i) {
    const bool end = i == expression.size();
    const char c = end ? ',' : expression[i];
    if (c == ' ' || c == '\t' || c == '\n') fail(expression, i, "unexpected whitespace");
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (end || (c == ',' && depth <= 0)) {
      expand_item(expression, expression.substr(start, i - start), start, hosts);
      start = i + 1;
      depth = 0;
    }
  }
  return hosts;
}

std::vector<int> expand_tasks_per_node(std::string_view value) {
  std::vector<int> counts;
  const auto bad = [&](size_t offset, const std::string& what) {
    throw UsageError("tasks per node '" + std::string(value) + "': " + what + " at offset " +
                     std::to_string(offset) + "; expected e.g. '2(x3),1'");
  };
  if (value.empty()) bad(0, "empty value");
  size_t pos = 0;
  while (true) {
    const size_t count_at = pos;
    const std::string count_text = read_digits(value, pos);
    if (count_text.empty() || count_text.size() > 9) bad(count_at, "expected a task count");
    const int count = std::stoi(count_text);
    long repeat = 1;
    if (pos < value.size() && value[pos] == '(') {
      if (value.substr(pos, 2) != "(x") bad(pos, "expected '(x'");
      pos += 2;
      const size_t repeat_at = pos;
      const std::string repeat_text = read_digits(value, pos);
      if (repeat_text.empty() || repeat_text.size() > 7) bad(repeat_at, "expected a repeat count");
      repeat = std::stol(repeat_text);
      if (pos >= value.size() || value[pos] != ')') bad(pos, "expected ')'");
      ++pos;
    }
    if (counts.size() + static_cast<size_t>(repeat) > kMaxHosts) bad(count_at, "too many nodes");
    counts.insert(counts.end(), static_cast<size_t>(repeat), count);
    if (pos == value.size()) break;
    if (value[pos] != ',') bad(pos, std::string("unexpected '") + value[pos] + "'");
    ++pos;
  }
  return counts;
}

}  // namespace kmidi::slurm
