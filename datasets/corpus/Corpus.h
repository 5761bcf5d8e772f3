#pragma once
// A MIDI corpus as prepare and validate see it: which files, their labels,
// their song and their split. Torch-free.
//
// A corpus is a folder (every file matching corpus.include) or, with
// corpus.manifest, the rows of a CSV manifest (one file per row, labels in
// columns). Splits are by song, never by file, so that no song leaks across
// train/validation/test:
//   - split.method hash:     a song's split follows from sha256(salt, song id)
//                            against the cumulative ratios: deterministic and
//                            stable when the corpus grows (a song never moves);
//   - split.method manifest: the manifest's split column (GMD's info.csv);
//   - split.method files:    CSV lists of files per split (EMOPIA's split/).
// Song ids come from corpus.song_id_pattern (group 1 of a regex searched in
// the relative path; anchor it with ^ and $ as needed) or default to the
// relative path without its extension.
//
// Label types: int, float, text, and quadrant (Russell quadrant 1..4, which
// also yields labels "valence" and "arousal" of +1 or -1: Q1 +v+a, Q2 -v+a,
// Q3 -v-a, Q4 +v-a).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/Config.h"
#include "datasets/shards/Shard.h"

namespace kmidi::corpus {

struct ManifestConfig : config::Section {
  config::Path path;         ///< CSV with a header; empty: the folder is the corpus
  std::string file_column;   ///< column with the file path relative to corpus.root
  std::string file_suffix;   ///< appended to file_column values (EMOPIA's IDs lack ".mid")
  std::string split_column;  ///< for split.method manifest
  void visit(config::Visitor& v) override;
};

struct LabelConfig : config::Section {
  std::string name;                  ///< label name in shards and reports
  std::string column;                ///< manifest column; default: name
  std::string type = "text";         ///< int | float | text | quadrant
  std::vector<std::string> allowed;  ///< allowed values (int, text); empty: any
  bool required = true;              ///< an empty cell is a problem; false: stored as missing
  void visit(config::Visitor& v) override;
};

struct SplitFileConfig : config::Section {
  std::string split;   ///< split name the listed files belong to
  config::Path path;   ///< CSV listing files
  std::string column;  ///< column with paths relative to corpus.root
  std::string suffix;  ///< appended to the column's values
  void visit(config::Visitor& v) override;
};

struct SplitConfig : config::Section {
  std::string method = "hash";  ///< hash | manifest | files
  std::vector<std::string> names{"train", "validation", "test"};
  std::vector<double> ratios{0.8, 0.1, 0.1};  ///< hash: one per name, summing to 1
  std::string salt = "kmidi-split-v1";        ///< hash: changing it reshuffles every song
  std::vector<SplitFileConfig> files;         ///< files: one or more lists per split
  void visit(config::Visitor& v) override;
};

struct CorpusConfig : config::Section {
  config::Path root;  ///< folder the files (and manifest paths) are relative to
  std::vector<std::string> include{"**/*.mid", "**/*.midi", "**/*.kar"};
  std::vector<std::string> exclude;
  std::string song_id_pattern;  ///< regex searched in the relative path; group 1 is the song id
  ManifestConfig manifest;
  std::vector<LabelConfig> labels;
  void visit(config::Visitor& v) override;
};

/// One file of a corpus, as Corpus::entry() builds it.
struct CorpusEntry {
  std::string path;      ///< root/relative
  std::string relative;  ///< to corpus.root, '/'-separated
  std::string song_id;
  std::string split;     ///< "" when no split could be assigned (a problem says why)
  std::vector<shards::LabelValue> labels;  ///< aligned with Corpus::label_columns
  std::string origin;    ///< "manifest.csv:12", or "" for folder corpora
  bool exists = true;    ///< false: a manifest row names a missing file
};

/// Something wrong with the corpus description rather than with a file's bytes.
struct CorpusProblem {
  std::string kind;     ///< manifest | label | split | song_id | song_leak
  std::string where;    ///< "file.csv:12" or a relative path
  std::string message;
};

/// The files of a corpus, sorted by relative path. They are stored column by
/// column (paths back to back in one text, song ids as places in them, the
/// split as a byte), ~10 bytes a file beside its path rather than ~300 as
/// CorpusEntry values: a listing of a million files stays small beside
/// prepare's bounded buffers.
class Corpus {
 public:
  std::string root;
  std::vector<std::string> split_names;
  std::vector<shards::LabelColumn> label_columns;
  std::vector<CorpusProblem> problems;
  std::vector<std::string> unlisted;  ///< files under root matching include that the manifest omits

  size_t size() const { return split_.size(); }
  bool empty() const { return split_.empty(); }
  /// File i with every field.
  CorpusEntry entry(size_t i) const;
  std::string_view relative(size_t i) const {
    const uint32_t begin = i == 0 ? 0 : text_end(i - 1);
    return std::string_view(text_).substr(begin, ends_[2 * i] - begin);
  }
  std::string_view song_id(size_t i) const {
    const uint32_t end = ends_[2 * i + 1];
    if (end & kInPath) return relative(i).substr((end >> 16) & 0x7FFF, end & 0xFFFF);
    return std::string_view(text_).substr(ends_[2 * i], end - ends_[2 * i]);
  }
  std::string path(size_t i) const;
  /// File i's labels, aligned with label_columns.
  std::vector<shards::LabelValue> labels(size_t i) const;
  /// File i's split name, "" when it has none.
  const std::string& split(size_t i) const;
  /// File i's split as its position in split_names, or kNoSplit.
  uint8_t split_index(size_t i) const { return split_[i]; }
  static constexpr uint8_t kNoSplit = 0xFF;
  /// Room for `files` more files and `text_bytes` of paths and song ids.
  void reserve(size_t files, size_t text_bytes);
  /// Appends a file; files must come sorted by relative path. Throws
  /// UsageError for a split that is not one of split_names.
  void add(const CorpusEntry& e);
  int64_t count(const std::string& kind) const;

 private:
  // Song ids are mostly part of their path (a pattern's group, or the path
  // without its extension): then only where they sit in it is stored.
  static constexpr uint32_t kInPath = 0x80000000u;
  uint32_t text_end(size_t i) const {
    const uint32_t end = ends_[2 * i + 1];
    return end & kInPath ? ends_[2 * i] : end;
  }
  std::string text_;             // each relative path, followed by its song id unless that is part of it
  std::vector<uint32_t> ends_;   // [2i] end of file i's path in text_; [2i + 1] end of its song id in text_,
                                 // or kInPath | its offset in the path << 16 | its length
  std::vector<uint8_t> split_;   // index into split_names, or kNoSplit
  std::vector<shards::LabelValue> labels_;  // size() x label_columns.size()
  std::vector<std::string> origins_;         // per file when any file has one, else empty
  std::vector<bool> missing_;                // per file when any file is missing, else empty
};

/// Lists, labels and splits the corpus. Never throws for problems in the data
/// (they are collected in Corpus::problems, one per offending line or file;
/// an unreadable or malformed manifest or split file is one problem); throws
/// DataError only when corpus.root is not a readable folder.
Corpus load_corpus(const CorpusConfig& corpus, const SplitConfig& split);

/// Throws DataError listing the first problems (with where and how many in
/// all) when there are any: prepare never writes shards from a corpus whose
/// manifest, labels or splits are wrong.
void require_no_problems(const Corpus& corpus);

/// Why the corpus is too empty to prepare, or "" when it is not: no file at
/// all (naming corpus.root and the include and exclude patterns, or the
/// manifest), else the split names that get no file (with the count per split).
std::string emptiness(const Corpus& corpus, const CorpusConfig& config);

/// The split of a song under split.method hash.
std::string hash_split(const std::string& song_id, const SplitConfig& split);

}  // namespace kmidi::corpus
