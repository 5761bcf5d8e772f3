#pragma once
// `kmidi validate`: the dataset validation run. Reads everything a prepare
// config points at (the corpus files and, when they exist, the prepared
// shards) and reports what would waste GPU hours: files that fail to parse,
// empty or silent files, malformed manifests and labels, songs or identical
// files in more than one split, shard token ids outside the vocabulary,
// stale or inconsistent shards; plus length and pitch statistics. It writes
// nothing but the report file it is asked for.

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "datasets/corpus/Corpus.h"
#include "datasets/corpus/PrepareConfig.h"
#include "datasets/tokenizer/Tokenizer.h"

namespace kmidi::corpus {

/// A problem with one file (or one shard).
struct FileIssue {
  std::string path;  ///< relative to corpus.root (or the shard's path)
  std::string split;
  std::string reason;
};

/// Files with identical content.
struct DuplicateGroup {
  std::string sha256;
  std::vector<std::pair<std::string, std::string>> files;  ///< (relative path, split)
};

/// Summary statistics of a per-file quantity.
struct Distribution {
  int64_t count = 0;
  double min = 0, mean = 0, p50 = 0, p95 = 0, max = 0;
  static Distribution of(std::vector<double> values);
};

/// What was checked in one shard.
struct ShardCheck {
  std::string split, path;
  int64_t items = 0, tokens = 0, out_of_range = 0;
};

struct ValidationReport {
  std::string config_path;
  std::string corpus_root;
  int64_t files = 0;   ///< corpus entries
  int64_t parsed = 0;  ///< files that parsed
  std::map<std::string, int64_t> files_per_split;
  std::vector<CorpusProblem> corpus_problems;  ///< manifest, label, split, song_id, song_leak
  std::vector<std::string> unlisted;           ///< files the manifest omits (information)
  std::vector<FileIssue> missing, parse_failures, empty, silent, encode_failures, repaired;
  std::vector<DuplicateGroup> duplicates_within_split, duplicates_across_splits;
  int64_t duplicate_copies_within_split = 0;  ///< extra copies beyond the first, summed over groups
  Distribution notes, tokens, seconds;
  std::array<int64_t, 128> pitch_histogram{};  ///< pitched notes
  std::array<int64_t, 128> drum_histogram{};   ///< channel-10 notes
  std::map<std::string, int64_t> time_signatures;  ///< "4/4" -> files declaring it
  tokenizer::EncodeStats encode;
  bool shards_present = false;
  std::vector<ShardCheck> shards;
  std::vector<FileIssue> shard_problems;
  int64_t out_of_range_tokens = 0;
  /// Thresholds exceeded, e.g. "parse failures: 3 > max_parse_failures 0", and
  /// data that can never pass: no file, a split without files, a shard without items.
  std::vector<std::string> violations;

  bool passed() const { return violations.empty(); }
  std::string to_json() const;
  /// A few lines for people: counts, statistics and the verdict.
  std::string summary() const;
};

/// Runs every check and applies the thresholds (filling `violations`); never
/// throws for problems in the data. Throws DataError only when a file it
/// needs to describe the corpus (manifest, split list) cannot be read.
ValidationReport run_validate(const PrepareConfig& config, const std::string& config_path);

}  // namespace kmidi::corpus
