#pragma once
// Typed configuration: YAML mapped onto C++ structs.
//
// A config struct derives from config::Section and lists its fields once, in
// visit(). The same visit() serves reading (YAML -> struct, with validation)
// and writing (struct -> resolved YAML). yaml-cpp stays inside Config.cpp.
//
//   struct OptimizerConfig : config::Section {
//     double lr = 3e-4;
//     void visit(config::Visitor& v) override {
//       v.field("lr", lr, config::Spec("peak learning rate").positive());
//     }
//   };
//
// Reading rejects unknown keys (with a "did you mean" hint), wrong types,
// out-of-range values and missing required keys; every message starts with
// "FILE:LINE:COL: key.path:" or names the command-line override it came from.
// An unknown key is reported before any other mistake in the document (a
// misspelt `max_stesp:` would otherwise surface as a rule about max_steps).
//
// Relative paths: a data path (Spec::data_path: a corpus folder, a manifest,
// a data set's CSV) resolves against the document's top-level `data_root:`
// when it has one (the shipped configs write
// `data_root: ${KMIDI_DATA_ROOT:-../../shared/data}`); every other path, and
// every data path of a document without data_root, resolves against the
// folder of the file that names it (another config, prepared shards, outputs);
// a command-line override's path resolves against the working directory.

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/Errors.h"

namespace kmidi::config {

/// A configuration mistake; the message already carries file, line and key.
class ConfigError : public UsageError {
 public:
  using UsageError::UsageError;
};

/// A filesystem path from a config. Relative paths are resolved when read:
/// against the config file's folder, against the document's `data_root` for
/// data paths (Spec::data_path), or against the working directory for
/// command-line overrides.
struct Path {
  std::string value;
  Path() = default;
  Path(std::string v) : value(std::move(v)) {}  // NOLINT: implicit on purpose
  Path(const char* v) : value(v) {}             // NOLINT
  bool empty() const { return value.empty(); }
  const std::string& str() const { return value; }
};

/// Field description and constraints. Built fluently: Spec("help").positive().
struct Spec {
  std::string help;
  bool is_required = false;
  std::optional<double> min_value, max_value;
  bool min_exclusive = false, max_exclusive = false;
  std::vector<std::string> choices;  // strings only
  std::optional<size_t> exact_size;  // lists only
  bool resolve_against_data_root = false;  // paths only: a data set's file or folder, never a config

  Spec() = default;
  explicit Spec(std::string h) : help(std::move(h)) {}
  Spec& required() { is_required = true; return *this; }
  Spec& min(double v) { min_value = v; min_exclusive = false; return *this; }
  Spec& max(double v) { max_value = v; max_exclusive = false; return *this; }
  Spec& greater_than(double v) { min_value = v; min_exclusive = true; return *this; }
  Spec& less_than(double v) { max_value = v; max_exclusive = true; return *this; }
  Spec& positive() { return greater_than(0.0); }
  Spec& non_negative() { return min(0.0); }
  Spec& unit_interval() { return min(0.0).max(1.0); }
  Spec& one_of(std::initializer_list<const char*> c) { choices.assign(c.begin(), c.end()); return *this; }
  Spec& size(size_t n) { exact_size = n; return *this; }
  Spec& data_path() { resolve_against_data_root = true; return *this; }
};

class Visitor;

/// Base of every config struct.
class Section {
 public:
  virtual ~Section();
  /// Lists every field. Called for reading, writing and documenting.
  virtual void visit(Visitor& v) = 0;
};

/// What a Section's visit() talks to. Implemented by the YAML reader and writer.
class Visitor {
 public:
  virtual ~Visitor();
  virtual void field(std::string_view key, bool& value, const Spec& spec = {}) = 0;
  virtual void field(std::string_view key, int& value, const Spec& spec = {}) = 0;
  virtual void field(std::string_view key, int64_t& value, const Spec& spec = {}) = 0;
  virtual void field(std::string_view key, double& value, const Spec& spec = {}) = 0;
  virtual void field(std::string_view key, float& value, const Spec& spec = {}) = 0;
  virtual void field(std::string_view key, std::string& value, const Spec& spec = {}) = 0;
  virtual void field(std::string_view key, Path& value, const Spec& spec = {}) = 0;
  virtual void field(std::string_view key, std::vector<int64_t>& value, const Spec& spec = {}) = 0;
  virtual void field(std::string_view key, std::vector<double>& value, const Spec& spec = {}) = 0;
  virtual void field(std::string_view key, std::vector<std::string>& value, const Spec& spec = {}) = 0;
  virtual void field(std::string_view key, std::vector<Path>& value, const Spec& spec = {}) = 0;
  /// A nested struct. When absent while reading, its defaults stay, but its
  /// required keys are still reported as missing.
  virtual void section(std::string_view key, Section& value, const Spec& spec = {}) = 0;

  /// A list of structs, e.g. `heads: [{name: va, task: regression}, ...]`.
  template <class T>
  void list(std::string_view key, std::vector<T>& items, const Spec& spec = {}) {
    const std::optional<size_t> n = begin_list(key, items.size(), spec);
    if (!n) return;
    if (describing()) {  // document the item type once, from a default item
      T prototype;
      list_item(0, prototype);
      end_list();
      return;
    }
    if (reading()) items.resize(*n);
    for (size_t i = 0; i < *n; ++i) list_item(i, items[i]);
    end_list();
  }

  /// True while filling structs from YAML; false while writing or documenting.
  virtual bool reading() const = 0;
  /// True while producing reference text (config::describe).
  virtual bool describing() const { return false; }

  /// Cross-field rule: when reading and `ok` is false, fails at `key` with `message`.
  void check(bool ok, std::string_view key, std::string_view message) {
    if (reading() && !ok) fail(key, message);
  }
  /// Throws ConfigError located at `key` (a key of the current section).
  [[noreturn]] virtual void fail(std::string_view key, std::string_view message) = 0;

 protected:
  /// Returns the number of items to visit, or nullopt when the key is absent (reading).
  virtual std::optional<size_t> begin_list(std::string_view key, size_t current_size,
                                           const Spec& spec) = 0;
  virtual void list_item(size_t index, Section& item) = 0;
  virtual void end_list() = 0;
};

/// A parsed YAML document with command-line overrides applied. Opaque here so
/// that yaml-cpp stays out of every header.
class Document {
 public:
  /// Parses `path`. Throws ConfigError naming the file and line on YAML syntax errors.
  static Document load_file(const std::string& path);
  /// Parses YAML text; `origin` names it in messages.
  static Document load_string(const std::string& text, const std::string& origin,
                              const std::string& base_dir);
  Document(Document&&) noexcept;
  Document& operator=(Document&&) noexcept;
  ~Document();

  /// Applies `a.b.c=value` (value parsed as YAML, so `x=[1,2]` makes a list).
  /// Paths in overrides resolve against the working directory.
  void apply_override(const std::string& assignment);
  void apply_overrides(const std::vector<std::string>& assignments);

  /// A top-level scalar read as a string before mapping (e.g. `task`), or nullopt.
  std::optional<std::string> top_level_string(const std::string& key) const;

  /// Fills `root` from the document; throws ConfigError on the first problem.
  void read_into(Section& root) const;

  const std::string& file() const;
  const std::string& base_dir() const;

  struct Impl;  // defined in Config.cpp

 private:
  Document();
  std::unique_ptr<Impl> impl_;
};

/// Serialises a struct to YAML (resolved values, declaration order).
std::string to_yaml(Section& root);

/// One-line-per-field reference text (key path, type, default, help).
std::string describe(Section& root);

/// Expands ${VAR} and ${VAR:-default} in `text`; `$$` is a literal `$`.
/// Throws ConfigError (prefixed by `where`) for an unset variable without default.
std::string expand_env(const std::string& text, const std::string& where);

}  // namespace kmidi::config
