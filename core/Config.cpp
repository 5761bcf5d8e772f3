#include "core/Config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/Strings.h"

namespace fs = std::filesystem;

namespace kmidi::config {

Section::~Section() = default;
Visitor::~Visitor() = default;

namespace {

/// Const lookup: a non-const operator[] would insert the key.
YAML::Node get(const YAML::Node& map, const std::string& key) { return map[key]; }

std::string join_key(const std::string& prefix, std::string_view key) {
  if (prefix.empty()) return std::string(key);
  return prefix + "." + std::string(key);
}

std::string format_number(double v) {
  std::ostringstream os;
  os.precision(12);
  os << v;
  return os.str();
}

std::string node_kind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing (null)";
    case YAML::NodeType::Scalar: return "'" + n.Scalar() + "'";
    default: return "an undefined value";
  }
}

std::optional<bool> parse_bool(const std::string& s) {
  const std::string l = strings::to_lower(s);
  if (l == "true" || l == "yes" || l == "on") return true;
  if (l == "false" || l == "no" || l == "off") return false;
  return std::nullopt;
}

std::optional<int64_t> parse_int(std::string s) {
  s = strings::trim(s);
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  int64_t v = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || ptr != end || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string s) {
  s = strings::trim(s);
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string range_text(const Spec& s) {
  if (s.min_value && s.max_value) {
    return std::string("in ") + (s.min_exclusive ? "(" : "[") + format_number(*s.min_value) + ", " +
           format_number(*s.max_value) + (s.max_exclusive ? ")" : "]");
  }
  if (s.min_value) return std::string(s.min_exclusive ? "> " : ">= ") + format_number(*s.min_value);
  return std::string(s.max_exclusive ? "< " : "<= ") + format_number(*s.max_value);
}

bool in_range(double v, const Spec& s) {
  if (s.min_value && (s.min_exclusive ? !(v > *s.min_value) : !(v >= *s.min_value))) return false;
  if (s.max_value && (s.max_exclusive ? !(v < *s.max_value) : !(v <= *s.max_value))) return false;
  return true;
}

}  // namespace

std::string expand_env(const std::string& text, const std::string& where) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '$') { out += c; continue; }
    if (i + 1 < text.size() && text[i + 1] == '$') { out += '$'; ++i; continue; }
    if (i + 1 >= text.size() || text[i + 1] != '{') { out += c; continue; }
    const size_t close = text.find('}', i + 2);
    if (close == std::string::npos) {
      throw ConfigError(where + ": unterminated '${' in '" + text + "'");
    }
    std::string inner = text.substr(i + 2, close - i - 2);
    std::optional<std::string> fallback;
    if (const size_t d = inner.find(":-"); d != std::string::npos) {
      fallback = inner.substr(d + 2);
      inner = inner.substr(0, d);
    }
    const char* value = std::getenv(inner.c_str());
    if (value && *value) {
      out += value;
    } else if (fallback) {
      out += *fallback;
    } else {
      throw ConfigError(where + ": environment variable '" + inner +
                        "' is not set (write ${" + inner + ":-default} to give a default)");
    }
    i = close;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Document

struct Document::Impl {
  YAML::Node root;
  std::string file;      // for messages
  std::string base_dir;  // relative paths in the file resolve here
  std::map<std::string, std::string> overrides;  // dotted key -> "key=value" as typed

  /// The override that set `path` or one of its parents, if any.
  const std::string* override_for(const std::string& path) const {
    for (const auto& [key, text] : overrides) {
      if (path == key || strings::starts_with(path, key + ".") ||
          strings::starts_with(path, key + "[")) {
        return &text;
      }
    }
    return nullptr;
  }

  std::string where(const std::string& path, const YAML::Mark& mark) const {
    if (const std::string* o = override_for(path)) return "command-line override '" + *o + "'";
    if (mark.is_null()) return file;
    return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }
};

Document::Document() : impl_(std::make_unique<Impl>()) {}
Document::Document(Document&&) noexcept = default;
Document& Document::operator=(Document&&) noexcept = default;
Document::~Document() = default;

const std::string& Document::file() const { return impl_->file; }
const std::string& Document::base_dir() const { return impl_->base_dir; }

Document Document::load_string(const std::string& text, const std::string& origin,
                               const std::string& base_dir) {
  Document doc;
  doc.impl_->file = origin;
  doc.impl_->base_dir = base_dir;
  try {
    doc.impl_->root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(origin + ":" + std::to_string(e.mark.line + 1) + ":" +
                      std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
  }
  if (doc.impl_->root.IsNull()) doc.impl_->root = YAML::Node(YAML::NodeType::Map);
  if (!doc.impl_->root.IsMap()) {
    throw ConfigError(origin + ": the top level must be a mapping of keys, got " +
                      node_kind(doc.impl_->root));
  }
  return doc;
}

Document Document::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open config file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string base = fs::absolute(fs::path(path)).parent_path().lexically_normal().string();
  return load_string(buffer.str(), path, base);
}

namespace {

/// Splits "a.b[2].c" into {"a", "b", "[2]", "c"}.
std::vector<std::string> split_key_path(const std::string& key, const std::string& assignment) {
  std::vector<std::string> parts;
  std::string cur;
  auto flush = [&] {
    if (cur.empty()) throw ConfigError("command-line override '" + assignment + "': empty key segment");
    parts.push_back(cur);
    cur.clear();
  };
  for (size_t i = 0; i < key.size(); ++i) {
    const char c = key[i];
    if (c == '.') {
      if (!cur.empty()) flush();
      else if (parts.empty() || parts.back()[0] != '[') flush();
    } else if (c == '[') {
      if (!cur.empty()) flush();
      const size_t close = key.find(']', i);
      if (close == std::string::npos) {
        throw ConfigError("command-line override '" + assignment + "': missing ']'");
      }
      parts.push_back(key.substr(i, close - i + 1));
      i = close;
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') {
      cur += c;
    } else {
      throw ConfigError("command-line override '" + assignment + "': invalid character '" +
                        std::string(1, c) + "' in key");
    }
  }
  if (!cur.empty()) parts.push_back(cur);
  if (parts.empty()) throw ConfigError("command-line override '" + assignment + "': empty key");
  return parts;
}

}  // namespace

void Document::apply_override(const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("command-line override '" + assignment + "': expected key.path=value");
  }
  const std::string key = strings::trim(assignment.substr(0, eq));
  const std::string value_text = assignment.substr(eq + 1);
  const std::vector<std::string> parts = split_key_path(key, assignment);

  YAML::Node value;
  try {
    value = YAML::Load(value_text);
  } catch (const YAML::Exception&) {
    value = YAML::Node(value_text);  // not YAML: take the text as a plain string
  }

  YAML::Node cur = impl_->root;
  std::string walked;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    const bool last = i + 1 == parts.size();
    if (part[0] == '[') {
      const auto index = parse_int(part.substr(1, part.size() - 2));
      if (!cur.IsSequence() || !index || *index < 0 || static_cast<size_t>(*index) >= cur.size()) {
        throw ConfigError("command-line override '" + assignment + "': '" + walked +
                          "' has no list item " + part);
      }
      walked += part;
      if (last) { cur[static_cast<size_t>(*index)] = value; break; }
      YAML::Node next = cur[static_cast<size_t>(*index)];
      cur.reset(next);
      continue;
    }
    if (!cur.IsMap() && !cur.IsNull()) {
      throw ConfigError("command-line override '" + assignment + "': '" + walked +
                        "' is not a section (it holds " + node_kind(cur) + ")");
    }
    walked = walked.empty() ? part : walked + "." + part;
    if (last) { cur[part] = value; break; }
    YAML::Node next = cur[part];
    if (!next.IsDefined() || next.IsNull()) {
      cur[part] = YAML::Node(YAML::NodeType::Map);
      next = cur[part];
    }
    cur.reset(next);
  }
  std::string canonical;
  for (const auto& p : parts) {
    canonical += (p[0] == '[' || canonical.empty()) ? p : "." + p;
  }
  impl_->overrides[canonical] = assignment;
}

void Document::apply_overrides(const std::vector<std::string>& assignments) {
  for (const auto& a : assignments) apply_override(a);
}

std::optional<std::string> Document::top_level_string(const std::string& key) const {
  const YAML::Node n = get(impl_->root, key);
  if (!n.IsDefined() || n.IsNull()) return std::nullopt;
  if (!n.IsScalar()) {
    throw ConfigError(impl_->where(key, n.Mark()) + ": " + key + ": expected a string, got " +
                      node_kind(n));
  }
  return expand_env(n.Scalar(), impl_->where(key, n.Mark()) + ": " + key);
}

// ---------------------------------------------------------------------------
// Reader

namespace {

/// A key the struct does not have, or a duplicate key.
class KeyError final : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

class Reader final : public Visitor {
 public:
  explicit Reader(const Document::Impl& doc) : doc_(doc) { compute_data_root(); }

  /// Reads the document into `root`. A misspelt key (`max_stesp:`) shows up
  /// first as a missing key or a broken rule, so any other mistake is
  /// reported only when the document has no unknown key.
  void read_root(Section& root) {
    try {
      visit_root(root);
    } catch (const KeyError&) {
      throw;
    } catch (const ConfigError&) {
      scan_for_unknown_keys(root);
      throw;
    }
  }

  bool reading() const override { return !scanning_; }
  bool describing() const override { return scanning_; }

  [[noreturn]] void fail(std::string_view key, std::string_view message) override {
    const Frame& f = frames_.back();
    const std::string path = join_key(f.path, key);
    const YAML::Node n = get(f.node, std::string(key));
    const YAML::Mark mark = n.IsDefined() ? n.Mark() : f.node.Mark();
    throw ConfigError(doc_.where(path, mark) + ": " + path + ": " + std::string(message));
  }

  void field(std::string_view key, bool& value, const Spec& spec) override {
    if (auto text = scalar(key, spec, "true or false")) {
      const auto v = parse_bool(*text);
      if (!v) fail(key, "expected true or false, got '" + *text + "'");
      value = *v;
    }
  }
  void field(std::string_view key, int& value, const Spec& spec) override {
    int64_t v = value;
    read_int(key, v, spec);
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
      fail(key, "value " + std::to_string(v) + " does not fit a 32-bit integer");
    }
    value = static_cast<int>(v);
  }
  void field(std::string_view key, int64_t& value, const Spec& spec) override {
    read_int(key, value, spec);
  }
  void field(std::string_view key, double& value, const Spec& spec) override {
    read_double(key, value, spec);
  }
  void field(std::string_view key, float& value, const Spec& spec) override {
    double v = value;
    read_double(key, v, spec);
    value = static_cast<float>(v);
  }
  void field(std::string_view key, std::string& value, const Spec& spec) override {
    if (auto text = scalar(key, spec, "a string")) {
      check_choice(key, *text, spec);
      if (spec.is_required && text->empty()) fail(key, "must not be empty");
      value = *text;
    }
  }
  void field(std::string_view key, Path& value, const Spec& spec) override {
    const std::string path = join_key(frames_.back().path, key);
    if (auto text = scalar(key, spec, "a path")) {
      if (spec.is_required && text->empty()) fail(key, "must not be empty");
      value.value = resolve_path(path, *text, spec);
    } else {
      value.value = resolve_path(path, value.value, spec);  // defaults resolve like written values
    }
  }
  void field(std::string_view key, std::vector<int64_t>& value, const Spec& spec) override {
    read_list(key, value, spec, "integers", [&](const std::string& t, const std::string& where) {
      const auto v = parse_int(t);
      if (!v) throw ConfigError(where + ": expected an integer, got '" + t + "'");
      if ((spec.min_value || spec.max_value) && !in_range(static_cast<double>(*v), spec)) {
        throw ConfigError(where + ": must be " + range_text(spec) + ", got " + t);
      }
      return *v;
    });
  }
  void field(std::string_view key, std::vector<double>& value, const Spec& spec) override {
    read_list(key, value, spec, "numbers", [&](const std::string& t, const std::string& where) {
      const auto v = parse_double(t);
      if (!v) throw ConfigError(where + ": expected a finite number, got '" + t + "'");
      if ((spec.min_value || spec.max_value) && !in_range(*v, spec)) {
        throw ConfigError(where + ": must be " + range_text(spec) + ", got " + t);
      }
      return *v;
    });
  }
  void field(std::string_view key, std::vector<std::string>& value, const Spec& spec) override {
    read_list(key, value, spec, "strings", [&](const std::string& t, const std::string& where) {
      if (!spec.choices.empty() &&
          std::find(spec.choices.begin(), spec.choices.end(), t) == spec.choices.end()) {
        throw ConfigError(where + ": must be one of " + strings::join(spec.choices, ", ") +
                          "; got '" + t + "'");
      }
      return t;
    });
  }
  void field(std::string_view key, std::vector<Path>& value, const Spec& spec) override {
    const std::string base = join_key(frames_.back().path, key);
    read_list(key, value, spec, "paths", [&](const std::string& t, const std::string&) {
      return Path(resolve_path(base, t, spec));
    });
  }

  void section(std::string_view key, Section& value, const Spec& spec) override {
    Frame& parent = frames_.back();
    const std::string k(key);
    parent.known.insert(k);
    const YAML::Node found = get(parent.node, k);
    const std::string path = join_key(parent.path, key);
    const bool absent = !found.IsDefined() || found.IsNull();
    if (scanning_ && (absent || !found.IsMap())) return;
    if (absent && spec.is_required && !found.IsDefined()) fail(key, "missing required section");
    if (!absent && !found.IsMap()) {
      fail(key, "expected a section (a mapping of keys), got " + node_kind(found));
    }
    // Absent: defaults stay, but required keys inside still get reported.
    // (A missing key's node cannot be reassigned in yaml-cpp, hence the copy.)
    visit_frame(absent ? YAML::Node(YAML::NodeType::Map) : found, path, value);
  }

 protected:
  std::optional<size_t> begin_list(std::string_view key, size_t, const Spec& spec) override {
    Frame& parent = frames_.back();
    const std::string k(key);
    parent.known.insert(k);
    const YAML::Node n = get(parent.node, k);
    if (scanning_) {
      if (!n.IsDefined() || !n.IsSequence()) return std::nullopt;  // an absent key's node is invalid in yaml-cpp
      lists_.push_back(ListFrame{n, join_key(parent.path, key)});
      return n.size();
    }
    if (!n.IsDefined() || n.IsNull()) {
      if (spec.is_required) fail(key, "missing required list");
      return std::nullopt;
    }
    if (!n.IsSequence()) fail(key, "expected a list, got " + node_kind(n));
    if (spec.exact_size && n.size() != *spec.exact_size) {
      fail(key, "expected " + std::to_string(*spec.exact_size) + " items, got " +
                    std::to_string(n.size()));
    }
    lists_.push_back(ListFrame{n, join_key(parent.path, key)});
    return n.size();
  }
  void list_item(size_t index, Section& item) override {
    const ListFrame l = lists_.back();  // a copy: nested lists may grow lists_
    if (scanning_) {  // `item` is a prototype (describing()): check every item's keys against it
      for (size_t i = 0; i < l.node.size(); ++i) {
        if (l.node[i].IsMap()) visit_frame(l.node[i], l.path + "[" + std::to_string(i) + "]", item);
      }
      return;
    }
    YAML::Node n = l.node[index];
    const std::string path = l.path + "[" + std::to_string(index) + "]";
    if (!n.IsMap()) {
      throw ConfigError(doc_.where(path, n.Mark()) + ": " + path +
                        ": expected a section (a mapping of keys), got " + node_kind(n));
    }
    visit_frame(n, path, item);
  }
  void end_list() override { lists_.pop_back(); }

 private:
  struct Frame {
    YAML::Node node;
    std::string path;
    std::set<std::string> known;  // every key the struct asked for
    std::set<std::string> seen;   // present keys (duplicate detection)
  };
  struct ListFrame {
    YAML::Node node;
    std::string path;
  };

  void visit_root(Section& root) { visit_frame(doc_.root, "", root); }

  void visit_frame(const YAML::Node& node, const std::string& path, Section& value) {
    frames_.push_back(Frame{node, path, {}, {}});
    value.visit(*this);
    finish_frame();
    frames_.pop_back();
  }

  /// Visits the document again only to collect the keys each struct asks
  /// for (values, required keys and rules are ignored); throws KeyError at
  /// the first unknown key.
  void scan_for_unknown_keys(Section& root) {
    frames_.clear();
    lists_.clear();
    scanning_ = true;
    visit_root(root);
    scanning_ = false;
  }

  /// The scalar text for `key` after ${ENV} expansion, or nullopt when absent.
  std::optional<std::string> scalar(std::string_view key, const Spec& spec, const char* expected) {
    Frame& f = frames_.back();
    const std::string k(key);
    f.known.insert(k);
    if (scanning_) return std::nullopt;
    const YAML::Node n = get(f.node, k);
    if (!n.IsDefined()) {
      if (spec.is_required) fail(key, "missing required key");
      return std::nullopt;
    }
    if (n.IsNull()) fail(key, std::string("has no value; expected ") + expected);
    if (!n.IsScalar()) fail(key, std::string("expected ") + expected + ", got " + node_kind(n));
    const std::string path = join_key(f.path, key);
    return expand_env(n.Scalar(), doc_.where(path, n.Mark()) + ": " + path);
  }

  void read_int(std::string_view key, int64_t& value, const Spec& spec) {
    if (auto text = scalar(key, spec, "an integer")) {
      const auto v = parse_int(*text);
      if (!v) fail(key, "expected an integer, got '" + *text + "'");
      check_range(key, static_cast<double>(*v), *text, spec);
      value = *v;
    }
  }
  void read_double(std::string_view key, double& value, const Spec& spec) {
    if (auto text = scalar(key, spec, "a number")) {
      const auto v = parse_double(*text);
      if (!v) fail(key, "expected a finite number, got '" + *text + "'");
      check_range(key, *v, *text, spec);
      value = *v;
    }
  }
  void check_range(std::string_view key, double v, const std::string& text, const Spec& spec) {
    if ((spec.min_value || spec.max_value) && !in_range(v, spec)) {
      fail(key, "must be " + range_text(spec) + ", got " + text);
    }
  }
  void check_choice(std::string_view key, const std::string& text, const Spec& spec) {
    if (spec.choices.empty()) return;
    if (std::find(spec.choices.begin(), spec.choices.end(), text) != spec.choices.end()) return;
    std::string msg = "must be one of " + strings::join(spec.choices, ", ") + "; got '" + text + "'";
    if (auto near = strings::closest(text, spec.choices)) msg += " (did you mean '" + *near + "'?)";
    fail(key, msg);
  }

  template <class T, class Parse>
  void read_list(std::string_view key, std::vector<T>& value, const Spec& spec, const char* what,
                 Parse parse) {
    Frame& f = frames_.back();
    const std::string k(key);
    f.known.insert(k);
    if (scanning_) return;
    const YAML::Node n = get(f.node, k);
    if (!n.IsDefined()) {
      if (spec.is_required) fail(key, "missing required key");
      return;
    }
    if (n.IsNull()) fail(key, std::string("has no value; expected a list of ") + what);
    if (!n.IsSequence()) fail(key, std::string("expected a list of ") + what + ", got " + node_kind(n));
    if (spec.exact_size && n.size() != *spec.exact_size) {
      fail(key, "expected " + std::to_string(*spec.exact_size) + " items, got " +
                    std::to_string(n.size()));
    }
    const std::string path = join_key(f.path, key);
    std::vector<T> out;
    for (size_t i = 0; i < n.size(); ++i) {
      const YAML::Node item = n[i];
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      const std::string where = doc_.where(item_path, item.Mark()) + ": " + item_path;
      if (!item.IsScalar()) {
        throw ConfigError(where + ": expected one of the " + what + ", got " + node_kind(item));
      }
      out.push_back(parse(expand_env(item.Scalar(), where), where));
    }
    value = std::move(out);
  }

  /// Rejects keys the struct did not ask for, and duplicate keys.
  void finish_frame() {
    Frame& f = frames_.back();
    std::set<std::string> present;
    for (auto it = f.node.begin(); it != f.node.end(); ++it) {
      const YAML::Node k = it->first;
      const std::string name = k.IsScalar() ? k.Scalar() : std::string("<non-scalar key>");
      const std::string path = join_key(f.path, name);
      if (!present.insert(name).second) {
        throw KeyError(doc_.where(path, k.Mark()) + ": " + path + ": duplicate key");
      }
      if (f.known.count(name)) continue;
      std::string msg = doc_.where(path, k.Mark()) + ": " + path + ": unknown key";
      std::vector<std::string> known(f.known.begin(), f.known.end());
      if (auto near = strings::closest(name, known)) {
        msg += " (did you mean '" + join_key(f.path, *near) + "'?)";
      } else if (!known.empty()) {
        msg += "; allowed here: " + strings::join(known, ", ");
      }
      throw KeyError(msg);
    }
  }

  /// Only a `data_root:` key sets the data root (the shipped configs write
  /// `data_root: ${KMIDI_DATA_ROOT:-...}`); without one, data paths resolve
  /// against the config's folder like every other path, so a config that
  /// names files beside it is never redirected by the environment.
  void compute_data_root() {
    const YAML::Node n = get(doc_.root, "data_root");
    if (n.IsDefined() && n.IsScalar() && !n.Scalar().empty()) {
      const std::string text = expand_env(n.Scalar(), doc_.where("data_root", n.Mark()));
      const bool from_cli = doc_.override_for("data_root") != nullptr;
      data_root_ = absolute_from(text, from_cli ? fs::current_path().string() : doc_.base_dir);
    }
  }

  static std::string absolute_from(std::string text, const std::string& base) {
    if (strings::starts_with(text, "~/")) {
      if (const char* home = std::getenv("HOME")) text = std::string(home) + text.substr(1);
    }
    fs::path p(text);
    if (p.is_relative()) p = fs::path(base) / p;
    return p.lexically_normal().string();
  }

  std::string resolve_path(const std::string& path_key, const std::string& text, const Spec& spec) {
    if (text.empty()) return text;
    if (doc_.override_for(path_key)) return absolute_from(text, fs::current_path().string());
    if (spec.resolve_against_data_root && !data_root_.empty()) return absolute_from(text, data_root_);
    return absolute_from(text, doc_.base_dir);
  }

  const Document::Impl& doc_;
  std::vector<Frame> frames_;
  std::vector<ListFrame> lists_;
  std::string data_root_;
  bool scanning_ = false;  ///< in scan_for_unknown_keys()
};

// ---------------------------------------------------------------------------
// Writer

class Writer final : public Visitor {
 public:
  explicit Writer(YAML::Emitter& out) : out_(out) {}
  bool reading() const override { return false; }
  [[noreturn]] void fail(std::string_view key, std::string_view message) override {
    throw ConfigError(std::string(key) + ": " + std::string(message));
  }
  void field(std::string_view key, bool& v, const Spec&) override { out_ << YAML::Key << std::string(key) << YAML::Value << v; }
  void field(std::string_view key, int& v, const Spec&) override { out_ << YAML::Key << std::string(key) << YAML::Value << v; }
  void field(std::string_view key, int64_t& v, const Spec&) override { out_ << YAML::Key << std::string(key) << YAML::Value << v; }
  void field(std::string_view key, double& v, const Spec&) override { out_ << YAML::Key << std::string(key) << YAML::Value << format_number(v); }
  void field(std::string_view key, float& v, const Spec&) override { out_ << YAML::Key << std::string(key) << YAML::Value << format_number(v); }
  void field(std::string_view key, std::string& v, const Spec&) override { out_ << YAML::Key << std::string(key) << YAML::Value << v; }
  void field(std::string_view key, Path& v, const Spec&) override { out_ << YAML::Key << std::string(key) << YAML::Value << v.value; }
  void field(std::string_view key, std::vector<int64_t>& v, const Spec&) override { seq(key, v); }
  void field(std::string_view key, std::vector<double>& v, const Spec&) override {
    std::vector<std::string> s;
    for (double d : v) s.push_back(format_number(d));
    seq(key, s);
  }
  void field(std::string_view key, std::vector<std::string>& v, const Spec&) override { seq(key, v); }
  void field(std::string_view key, std::vector<Path>& v, const Spec&) override {
    std::vector<std::string> s;
    for (const Path& p : v) s.push_back(p.value);
    seq(key, s);
  }
  void section(std::string_view key, Section& value, const Spec&) override {
    out_ << YAML::Key << std::string(key) << YAML::Value << YAML::BeginMap;
    value.visit(*this);
    out_ << YAML::EndMap;
  }

 protected:
  std::optional<size_t> begin_list(std::string_view key, size_t n, const Spec&) override {
    out_ << YAML::Key << std::string(key) << YAML::Value << YAML::BeginSeq;
    return n;
  }
  void list_item(size_t, Section& item) override {
    out_ << YAML::BeginMap;
    item.visit(*this);
    out_ << YAML::EndMap;
  }
  void end_list() override { out_ << YAML::EndSeq; }

 private:
  template <class T>
  void seq(std::string_view key, const std::vector<T>& v) {
    out_ << YAML::Key << std::string(key) << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& x : v) out_ << x;
    out_ << YAML::EndSeq;
  }
  YAML::Emitter& out_;
};

// ---------------------------------------------------------------------------
// Describer: a reference listing of every key.

class Describer final : public Visitor {
 public:
  bool reading() const override { return false; }
  [[noreturn]] void fail(std::string_view key, std::string_view message) override {
    throw ConfigError(std::string(key) + ": " + std::string(message));
  }
  void field(std::string_view k, bool& v, const Spec& s) override { line(k, "bool", v ? "true" : "false", s); }
  void field(std::string_view k, int& v, const Spec& s) override { line(k, "int", std::to_string(v), s); }
  void field(std::string_view k, int64_t& v, const Spec& s) override { line(k, "int", std::to_string(v), s); }
  void field(std::string_view k, double& v, const Spec& s) override { line(k, "float", format_number(v), s); }
  void field(std::string_view k, float& v, const Spec& s) override { line(k, "float", format_number(v), s); }
  void field(std::string_view k, std::string& v, const Spec& s) override { line(k, "string", "'" + v + "'", s); }
  void field(std::string_view k, Path& v, const Spec& s) override { line(k, "path", "'" + v.value + "'", s); }
  void field(std::string_view k, std::vector<int64_t>& v, const Spec& s) override { line(k, "list<int>", list_text(v), s); }
  void field(std::string_view k, std::vector<double>& v, const Spec& s) override { line(k, "list<float>", list_text(v), s); }
  void field(std::string_view k, std::vector<std::string>& v, const Spec& s) override { line(k, "list<string>", list_text(v), s); }
  void field(std::string_view k, std::vector<Path>& v, const Spec& s) override { line(k, "list<path>", std::to_string(v.size()) + " paths", s); }
  void section(std::string_view key, Section& value, const Spec&) override {
    prefix_.push_back(std::string(key));
    value.visit(*this);
    prefix_.pop_back();
  }
  std::string text() const { return out_.str(); }

 protected:
  bool describing() const override { return true; }
  std::optional<size_t> begin_list(std::string_view key, size_t n, const Spec& s) override {
    line(key, "list<section>", std::to_string(n) + " items", s);
    prefix_.push_back(std::string(key) + "[]");
    return 1;
  }
  void list_item(size_t, Section& item) override { item.visit(*this); }
  void end_list() override { prefix_.pop_back(); }

 private:
  template <class T>
  static std::string list_text(const std::vector<T>& v) {
    std::ostringstream os;
    os << "[";
    for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
    os << "]";
    return os.str();
  }
  void line(std::string_view key, const char* type, const std::string& def, const Spec& s) {
    std::string path;
    for (const auto& p : prefix_) path += p + ".";
    path += std::string(key);
    out_ << path << "  (" << type << (s.is_required ? ", required" : ", default " + def) << ")";
    if (s.min_value || s.max_value) out_ << " " << range_text(s);
    if (!s.choices.empty()) out_ << " one of {" << strings::join(s.choices, ", ") << "}";
    if (!s.help.empty()) out_ << ": " << s.help;
    out_ << "\n";
  }
  std::vector<std::string> prefix_;
  std::ostringstream out_;
};

}  // namespace

void Document::read_into(Section& root) const {
  Reader reader(*impl_);
  reader.read_root(root);
}

std::string to_yaml(Section& root) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  Writer w(out);
  root.visit(w);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string describe(Section& root) {
  Describer d;
  root.visit(d);
  return d.text();
}

}  // namespace kmidi::config
