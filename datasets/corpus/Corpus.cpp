#include "datasets/corpus/Corpus.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <numeric>
#include <regex>
#include <set>

#include "core/Csv.h"
#include "core/Errors.h"
#include "core/Hash.h"
#include "core/Strings.h"
#include "datasets/corpus/FileList.h"

namespace fs = std::filesystem;

namespace kmidi::corpus {

using shards::LabelColumn;
using shards::LabelKind;
using shards::LabelValue;

void ManifestConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("path", path, Spec("CSV manifest with a header row; empty: every matching file under corpus.root").data_path());
  v.field("file_column", file_column, Spec("manifest column holding each file's path relative to corpus.root"));
  v.field("file_suffix", file_suffix, Spec("appended to file_column values, e.g. .mid when the manifest lists IDs"));
  v.field("split_column", split_column, Spec("manifest column holding each file's split (split.method manifest)"));
  v.check(path.empty() || !file_column.empty(), "file_column", "is required when manifest.path is set");
}

void LabelConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("name", name, Spec("label name in shards and reports").required());
  v.field("column", column, Spec("manifest column; default: the label's name"));
  v.field("type", type, Spec("int, float, text or quadrant (1..4; adds valence and arousal labels)")
                            .one_of({"int", "float", "text", "quadrant"}));
  v.field("allowed", allowed, Spec("allowed values (int and text labels); empty: any"));
  v.field("required", required, Spec("an empty cell is a problem; false stores it as missing"));
  if (v.reading() && column.empty()) column = name;
}

void SplitFileConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("split", split, Spec("split the listed files belong to").required());
  v.field("path", path, Spec("CSV file listing the split's files").required().data_path());
  v.field("column", column, Spec("column holding paths relative to corpus.root").required());
  v.field("suffix", suffix, Spec("appended to the column's values"));
}

void SplitConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("method", method, Spec("hash (of the song id), manifest (split column) or files (split lists)")
                                .one_of({"hash", "manifest", "files"}));
  v.field("names", names, Spec("split names, in order"));
  v.field("ratios", ratios, Spec("hash: fraction of songs per split name, summing to 1").min(0.0).max(1.0));
  v.field("salt", salt, Spec("hash: changing it reshuffles every song"));
  v.list("files", files, Spec("files: CSV lists of each split's files"));
  if (!v.reading()) return;
  v.check(!names.empty(), "names", "must name at least one split");
  std::set<std::string> unique(names.begin(), names.end());
  v.check(unique.size() == names.size(), "names", "lists a split twice");
  for (const std::string& n : names) {
    v.check(!n.empty() && n.find_first_of("/\\. ") == std::string::npos, "names",
            "'" + n + "' is not usable as a file name (no '/', '\\', '.', spaces)");
  }
  if (method == "hash") {
    v.check(ratios.size() == names.size(), "ratios",
            "needs one ratio per split name (" + std::to_string(names.size()) + "), got " + std::to_string(ratios.size()));
    const double sum = std::accumulate(ratios.begin(), ratios.end(), 0.0);
    v.check(std::fabs(sum - 1.0) < 1e-6, "ratios", "must sum to 1, got " + std::to_string(sum));
  }
  if (method == "files") {
    v.check(!files.empty(), "files", "is required for method files");
    for (const SplitFileConfig& f : files) {
      v.check(unique.count(f.split) > 0, "files",
              "names split '" + f.split + "', which is not one of " + strings::join(names, ", "));
    }
  }
}

void CorpusConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("root", root, Spec("folder holding the corpus (relative paths resolve against data_root)").required().data_path());
  v.field("include", include, Spec("glob patterns of files to take, relative to root ('**' spans folders)"));
  v.field("exclude", exclude, Spec("glob patterns of files to leave out"));
  v.field("song_id_pattern", song_id_pattern,
          Spec("regex searched in the relative path (anchor it with ^ and $ as needed) whose group 1 is the song "
               "id; empty: the path without extension"));
  v.section("manifest", manifest);
  v.list("labels", labels, Spec("labels read from manifest columns"));
  if (!v.reading()) return;
  if (!song_id_pattern.empty()) {
    bool ok = true;
    std::string reason;
    try {
      std::regex re(song_id_pattern);
      ok = re.mark_count() >= 1;
      reason = "needs a capture group for the song id";
    } catch (const std::regex_error& e) {
      ok = false;
      reason = std::string("is not a valid regular expression: ") + e.what();
    }
    v.check(ok, "song_id_pattern", reason);
  }
  v.check(labels.empty() || !manifest.path.empty(), "labels", "need a manifest (corpus.manifest.path)");
  std::set<std::string> names;
  for (const LabelConfig& l : labels) {
    v.check(names.insert(l.name).second, "labels", "label '" + l.name + "' is defined twice");
    if (l.type == "quadrant") {
      v.check(names.insert("valence").second && names.insert("arousal").second, "labels",
              "a quadrant label adds 'valence' and 'arousal'; no other label may use those names");
    }
  }
}

int64_t Corpus::count(const std::string& kind) const {
  return std::count_if(problems.begin(), problems.end(), [&](const CorpusProblem& p) { return p.kind == kind; });
}

std::string Corpus::path(size_t i) const { return (fs::path(root) / std::string(relative(i))).lexically_normal().string(); }

const std::string& Corpus::split(size_t i) const {
  static const std::string none;
  return split_[i] == kNoSplit ? none : split_names[split_[i]];
}

std::vector<LabelValue> Corpus::labels(size_t i) const {
  const size_t columns = label_columns.size();
  return std::vector<LabelValue>(labels_.begin() + static_cast<std::ptrdiff_t>(i * columns),
                                 labels_.begin() + static_cast<std::ptrdiff_t>((i + 1) * columns));
}

CorpusEntry Corpus::entry(size_t i) const {
  CorpusEntry e;
  e.path = path(i);
  e.relative = std::string(relative(i));
  e.song_id = std::string(song_id(i));
  e.split = split(i);
  e.labels = labels(i);
  if (!origins_.empty()) e.origin = origins_[i];
  e.exists = missing_.empty() || !missing_[i];
  return e;
}

void Corpus::reserve(size_t files, size_t text_bytes) {
  text_.reserve(text_.size() + text_bytes);
  ends_.reserve(ends_.size() + 2 * files);
  split_.reserve(split_.size() + files);
}

void Corpus::add(const CorpusEntry& e) {
  uint8_t split_at = kNoSplit;
  if (!e.split.empty()) {
    const auto it = std::find(split_names.begin(), split_names.end(), e.split);
    if (it == split_names.end()) throw UsageError("corpus: split '" + e.split + "' of '" + e.relative + "' is not in split.names");
    split_at = static_cast<uint8_t>(it - split_names.begin());
  }
  if (e.labels.size() != label_columns.size()) {
    throw UsageError("corpus: '" + e.relative + "' has " + std::to_string(e.labels.size()) + " labels for " +
                     std::to_string(label_columns.size()) + " columns");
  }
  if (text_.size() + e.relative.size() + e.song_id.size() >= kInPath) {
    throw DataError(root + ": the corpus's paths exceed 2 GB of text");
  }
  text_ += e.relative;
  ends_.push_back(static_cast<uint32_t>(text_.size()));
  const size_t at = e.relative.find(e.song_id);
  if (at != std::string::npos && at <= 0x7FFF && e.song_id.size() <= 0xFFFF) {
    ends_.push_back(kInPath | static_cast<uint32_t>(at) << 16 | static_cast<uint32_t>(e.song_id.size()));
  } else {
    text_ += e.song_id;
    ends_.push_back(static_cast<uint32_t>(text_.size()));
  }
  split_.push_back(split_at);
  labels_.insert(labels_.end(), e.labels.begin(), e.labels.end());
  if (!e.origin.empty() || !origins_.empty()) {  // kept only once some file has one
    origins_.resize(size() - 1);
    origins_.push_back(e.origin);
  }
  if (!e.exists || !missing_.empty()) {
    missing_.resize(size() - 1, false);
    missing_.push_back(!e.exists);
  }
}

std::string hash_split(const std::string& song_id, const SplitConfig& split) {
  const std::string digest = hash::sha256_hex(split.salt + '\0' + song_id);
  const uint64_t top = std::strtoull(digest.substr(0, 16).c_str(), nullptr, 16);
  const double u = static_cast<double>(top) / 18446744073709551616.0;  // 2^64
  double cumulative = 0.0;
  for (size_t i = 0; i + 1 < split.names.size(); ++i) {
    cumulative += split.ratios[i];
    if (u < cumulative) return split.names[i];
  }
  return split.names.back();
}

namespace {

std::vector<LabelColumn> label_columns(const std::vector<LabelConfig>& labels) {
  std::vector<LabelColumn> out;
  for (const LabelConfig& l : labels) {
    out.push_back(LabelColumn{l.name, l.type == "text" ? LabelKind::kText : LabelKind::kNumber});
    if (l.type == "quadrant") {
      out.push_back(LabelColumn{"valence", LabelKind::kNumber});
      out.push_back(LabelColumn{"arousal", LabelKind::kNumber});
    }
  }
  return out;
}

bool parse_integer(const std::string& text, int64_t& out) {
  const char* end = text.data() + text.size();
  auto r = std::from_chars(text.data(), end, out);
  return r.ec == std::errc() && r.ptr == end && !text.empty();
}

/// Parses one cell into the label values it yields; returns "" or a problem.
std::string parse_label(const LabelConfig& l, const std::string& raw, std::vector<LabelValue>& out) {
  const std::string cell = strings::trim(raw);
  const size_t slots = l.type == "quadrant" ? 3 : 1;
  if (cell.empty()) {
    out.insert(out.end(), slots, LabelValue{});
    return l.required ? "label '" + l.name + "' (column " + l.column + ") is empty" : "";
  }
  auto not_allowed = [&] {
    return !l.allowed.empty() && std::find(l.allowed.begin(), l.allowed.end(), cell) == l.allowed.end();
  };
  auto bad = [&](const std::string& why) {
    out.insert(out.end(), slots, LabelValue{});
    return "label '" + l.name + "' (column " + l.column + ") is '" + cell + "': " + why;
  };
  if (l.type == "text") {
    if (not_allowed()) return bad("not one of " + strings::join(l.allowed, ", "));
    out.push_back(LabelValue::of(cell));
  } else if (l.type == "int") {
    int64_t v = 0;
    if (!parse_integer(cell, v)) return bad("expected an integer");
    if (not_allowed()) return bad("not one of " + strings::join(l.allowed, ", "));
    out.push_back(LabelValue::of(static_cast<double>(v)));
  } else if (l.type == "float") {
    char* end = nullptr;
    const double v = std::strtod(cell.c_str(), &end);
    if (end != cell.c_str() + cell.size() || !std::isfinite(v)) return bad("expected a finite number");
    out.push_back(LabelValue::of(v));
  } else {  // quadrant
    int64_t q = 0;
    if (!parse_integer(cell, q) || q < 1 || q > 4) return bad("expected a quadrant 1, 2, 3 or 4");
    out.push_back(LabelValue::of(static_cast<double>(q)));
    out.push_back(LabelValue::of(q == 1 || q == 4 ? 1.0 : -1.0));  // valence
    out.push_back(LabelValue::of(q == 1 || q == 2 ? 1.0 : -1.0));  // arousal
  }
  return "";
}

int column_of(const csv::Table& table, const std::string& name) {
  return table.has_column(name) ? static_cast<int>(table.column(name)) : -1;
}

std::string default_song_id(const std::string& relative) {
  const size_t slash = relative.rfind('/');
  const size_t dot = relative.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return relative;
  return relative.substr(0, dot);
}

/// Builds a Corpus step by step; every problem found is recorded, not thrown,
/// so that validate can list them all.
class CorpusLoader {
 public:
  CorpusLoader(const CorpusConfig& config, const SplitConfig& split) : config_(config), split_(split) {
    corpus_.root = config.root.str();
    corpus_.split_names = split.names;
    corpus_.label_columns = label_columns(config.labels);
    if (!config.song_id_pattern.empty()) song_re_.emplace(config.song_id_pattern);
  }

  Corpus load() {
    std::vector<std::string> listed = list_files(corpus_.root, config_.include, config_.exclude);
    if (config_.manifest.path.empty()) {
      load_folder(listed);
    } else {
      read_manifest();
      for (const std::string& rel : listed) {
        if (!index_.count(rel)) corpus_.unlisted.push_back(rel);
      }
      load_manifest_rows();
    }
    // A hash split follows from the song id alone: no song can be in two splits.
    if (split_.method != "hash") report_song_leaks();
    return std::move(corpus_);
  }

 private:
  /// The manifest's columns this job reads (-1: missing, already reported).
  struct ManifestColumns {
    int file = -1, split = -1;
    std::vector<int> labels;
  };
  using SplitLists = std::map<std::string, std::pair<std::string, std::string>>;  // relative -> (split, where)

  void problem(std::string kind, std::string where, std::string message) {
    corpus_.problems.push_back(CorpusProblem{std::move(kind), std::move(where), std::move(message)});
  }

  /// A folder corpus goes straight into the compact listing, file by file:
  /// the listed files exist and come sorted. Problems keep the order of
  /// the checks: song ids, then the split files, then files in no split file.
  void load_folder(std::vector<std::string>& listed) {
    SplitLists listed_in;
    std::vector<CorpusProblem> split_problems;
    if (split_.method == "files") {
      std::swap(corpus_.problems, split_problems);
      read_split_files(listed_in, [&](const std::string& rel) { return std::binary_search(listed.begin(), listed.end(), rel); });
      std::swap(corpus_.problems, split_problems);
    }
    std::vector<CorpusProblem> unassigned;
    size_t path_bytes = 0;
    for (const std::string& rel : listed) path_bytes += rel.size();
    corpus_.reserve(listed.size(), path_bytes);  // a folder's song ids are parts of their paths
    for (std::string& rel : listed) {
      CorpusEntry e;
      e.relative = std::move(rel);
      e.song_id = song_id_of(e.relative);
      e.labels.resize(corpus_.label_columns.size());
      if (split_.method == "hash") e.split = hash_split(e.song_id, split_);
      if (split_.method == "files") {
        std::swap(corpus_.problems, unassigned);
        assign_listed_split(e, listed_in);
        std::swap(corpus_.problems, unassigned);
      }
      corpus_.add(e);
    }
    listed = {};
    corpus_.problems.insert(corpus_.problems.end(), split_problems.begin(), split_problems.end());
    corpus_.problems.insert(corpus_.problems.end(), unassigned.begin(), unassigned.end());
  }

  /// The manifest's rows, staged as entries, get their song ids, existence
  /// and splits, then join the listing in path order.
  void load_manifest_rows() {
    for (CorpusEntry& e : staged_) {
      std::error_code ec;
      e.exists = fs::is_regular_file(fs::path(corpus_.root) / e.relative, ec);
      e.song_id = song_id_of(e.relative);
    }
    if (split_.method == "hash") {
      for (CorpusEntry& e : staged_) e.split = hash_split(e.song_id, split_);
    } else if (split_.method == "files") {
      SplitLists listed_in;
      read_split_files(listed_in, [&](const std::string& rel) { return index_.count(rel) > 0; });
      for (CorpusEntry& e : staged_) assign_listed_split(e, listed_in);
    }
    std::sort(staged_.begin(), staged_.end(),
              [](const CorpusEntry& a, const CorpusEntry& b) { return a.relative < b.relative; });
    for (const CorpusEntry& e : staged_) corpus_.add(e);
    staged_.clear();
    index_.clear();
  }

  /// The song id of a relative path: group 1 of corpus.song_id_pattern, or
  /// the path without its extension (a problem when the pattern does not match).
  std::string song_id_of(const std::string& relative) {
    if (!song_re_) return default_song_id(relative);
    std::smatch m;
    if (std::regex_search(relative, m, *song_re_) && m.size() > 1 && m[1].matched) return m[1].str();
    problem("song_id", relative, "corpus.song_id_pattern does not match '" + relative + "'");
    return default_song_id(relative);
  }

  /// A column the config names, or a problem naming the manifest's header.
  int required_column(const csv::Table& table, const std::string& column, const std::string& key) {
    const int col = column_of(table, column);
    if (col < 0) {
      problem("manifest", table.source + ":1",
              "missing column '" + column + "' (" + key + "); header has: " + strings::join(table.header, ", "));
    }
    return col;
  }

  // A manifest that is not valid CSV (a row with the wrong number of fields,
  // an unterminated quote) is one problem naming its line.
  void read_manifest() {
    csv::Table table;
    try {
      table = csv::read(config_.manifest.path.str());
    } catch (const DataError& e) {
      problem("manifest", config_.manifest.path.str(), e.what());
      return;
    }
    ManifestColumns cols;
    cols.file = required_column(table, config_.manifest.file_column, "corpus.manifest.file_column");
    if (split_.method == "manifest") {
      cols.split = required_column(table, config_.manifest.split_column, "corpus.manifest.split_column");
    }
    for (size_t i = 0; i < config_.labels.size(); ++i) {
      cols.labels.push_back(
          required_column(table, config_.labels[i].column, "corpus.labels[" + std::to_string(i) + "].column"));
    }
    if (cols.file < 0) return;
    for (size_t r = 0; r < table.rows.size(); ++r) read_manifest_row(table.rows[r], table.where(r), cols);
  }

  void read_manifest_row(const std::vector<std::string>& row, const std::string& where, const ManifestColumns& cols) {
    const std::string value = strings::trim(row[static_cast<size_t>(cols.file)]);
    if (value.empty()) {
      problem("manifest", where, "empty file name in column '" + config_.manifest.file_column + "'");
      return;
    }
    const std::string rel = value + config_.manifest.file_suffix;
    if (fs::path(rel).is_absolute()) {
      problem("manifest", where, "'" + rel + "' is an absolute path; manifest paths are relative to corpus.root");
      return;
    }
    if (const auto it = index_.find(rel); it != index_.end()) {
      problem("manifest", where, "'" + rel + "' is listed again (first at " + staged_[it->second].origin + ")");
      return;
    }
    CorpusEntry e;
    e.origin = where;
    for (size_t i = 0; i < config_.labels.size(); ++i) {
      if (cols.labels[i] < 0) {
        e.labels.insert(e.labels.end(), config_.labels[i].type == "quadrant" ? 3 : 1, LabelValue{});
        continue;
      }
      const std::string issue = parse_label(config_.labels[i], row[static_cast<size_t>(cols.labels[i])], e.labels);
      if (!issue.empty()) problem("label", where, issue);
    }
    if (cols.split >= 0) {
      const std::string s = strings::trim(row[static_cast<size_t>(cols.split)]);
      if (std::find(split_.names.begin(), split_.names.end(), s) == split_.names.end()) {
        problem("split", where, "split '" + s + "' is not one of " + strings::join(split_.names, ", "));
      } else {
        e.split = s;
      }
    }
    e.relative = rel;
    index_.emplace(rel, staged_.size());
    staged_.push_back(std::move(e));
  }

  void assign_listed_split(CorpusEntry& e, const SplitLists& listed_in) {
    const auto it = listed_in.find(e.relative);
    if (it == listed_in.end()) problem("split", e.relative, "'" + e.relative + "' is in no split file");
    else e.split = it->second.first;
  }

  /// Every split file's rows into `listed_in`; `in_corpus` says whether a path is a corpus file.
  void read_split_files(SplitLists& listed_in, const std::function<bool(const std::string&)>& in_corpus) {
    for (const SplitFileConfig& f : split_.files) read_split_file(f, listed_in, in_corpus);
  }

  void read_split_file(const SplitFileConfig& f, SplitLists& listed_in, const std::function<bool(const std::string&)>& in_corpus) {
    csv::Table t;
    try {
      t = csv::read(f.path.str());
    } catch (const DataError& e) {
      problem("split", f.path.str(), e.what());
      return;
    }
    const int col = column_of(t, f.column);
    if (col < 0) {
      problem("split", t.source + ":1", "missing column '" + f.column + "'; header has: " + strings::join(t.header, ", "));
      return;
    }
    for (size_t r = 0; r < t.rows.size(); ++r) {
      const std::string rel = strings::trim(t.rows[r][static_cast<size_t>(col)]) + f.suffix;
      const auto [it, inserted] = listed_in.emplace(rel, std::make_pair(f.split, t.where(r)));
      if (!inserted) {
        problem("split", t.where(r), "'" + rel + "' is also listed for split " + it->second.first + " at " + it->second.second);
        continue;
      }
      if (!in_corpus(rel)) problem("split", t.where(r), "'" + rel + "' is not in the corpus");
    }
  }

  /// No song in two splits.
  void report_song_leaks() {
    std::map<std::string, std::map<std::string, std::vector<std::string>>> songs;  // song -> split -> files
    for (size_t i = 0; i < corpus_.size(); ++i) {
      if (!corpus_.split(i).empty()) {
        songs[std::string(corpus_.song_id(i))][corpus_.split(i)].push_back(std::string(corpus_.relative(i)));
      }
    }
    for (const auto& [song, splits] : songs) {
      if (splits.size() < 2) continue;
      std::vector<std::string> parts;
      for (const auto& [s, files] : splits) parts.push_back(s + " (" + strings::join(files, ", ") + ")");
      problem("song_leak", song, "song '" + song + "' is in more than one split: " + strings::join(parts, "; "));
    }
  }

  const CorpusConfig& config_;
  const SplitConfig& split_;
  std::optional<std::regex> song_re_;
  Corpus corpus_;
  std::vector<CorpusEntry> staged_;      // manifest rows, in manifest order
  std::map<std::string, size_t> index_;  // manifest: relative path -> staged row
};

}  // namespace

Corpus load_corpus(const CorpusConfig& config, const SplitConfig& split) { return CorpusLoader(config, split).load(); }

std::string emptiness(const Corpus& corpus, const CorpusConfig& config) {
  auto patterns = [](const std::vector<std::string>& list) { return "[" + strings::join(list, ", ") + "]"; };
  if (corpus.empty()) {
    if (!config.manifest.path.empty()) return config.manifest.path.str() + ": the manifest lists no MIDI files";
    std::string text = corpus.root + ": no MIDI files: nothing under this folder matches corpus.include " +
                       patterns(config.include);
    if (!config.exclude.empty()) text += " (corpus.exclude " + patterns(config.exclude) + ")";
    return text;
  }
  std::map<std::string, int64_t> per_split;
  for (size_t i = 0; i < corpus.size(); ++i) ++per_split[corpus.split(i)];
  std::vector<std::string> empty, counts;
  for (const std::string& name : corpus.split_names) {
    if (per_split[name] == 0) empty.push_back("'" + name + "'");
    counts.push_back(name + " " + std::to_string(per_split[name]));
  }
  if (empty.empty()) return "";
  return corpus.root + ": split " + strings::join(empty, ", ") + " gets no file (" + std::to_string(corpus.size()) +
         " files: " + strings::join(counts, ", ") +
         "); every split in split.names needs files: add files, or change split.names and split.ratios";
}

void require_no_problems(const Corpus& corpus) {
  if (corpus.problems.empty()) return;
  std::string text;
  const size_t shown = std::min<size_t>(corpus.problems.size(), 5);
  for (size_t i = 0; i < shown; ++i) {
    if (i) text += "; ";
    text += corpus.problems[i].where + ": " + corpus.problems[i].message;
  }
  if (corpus.problems.size() > shown) {
    text += "; and " + std::to_string(corpus.problems.size() - shown) + " more (run kmidi validate for the full list)";
  }
  throw DataError("the corpus description has " + std::to_string(corpus.problems.size()) + " problem(s): " + text);
}

}  // namespace kmidi::corpus
