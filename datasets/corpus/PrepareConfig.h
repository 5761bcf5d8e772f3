#pragma once
// The config of `kmidi prepare` and `kmidi validate` (one file describes a
// corpus, its tokenizer, its shards and the validation thresholds). See
// configs/prepare_*.yaml for annotated examples.

#include <cstdint>
#include <string>
#include <vector>

#include "core/Config.h"
#include "datasets/corpus/Corpus.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/tokenizer/TokenizerConfig.h"

namespace kmidi::corpus {

struct ReaderConfig : config::Section {
  bool strict = true;  ///< reject malformed files (as mido does); false repairs what it safely can
  int64_t max_file_bytes = int64_t{256} << 20;
  midi::ReadOptions options() const;
  void visit(config::Visitor& v) override;
};

struct OutputConfig : config::Section {
  config::Path dir;                ///< shards, tokenizer.json and prepare_report.json go here
  int deflate_level = 4;           ///< 0..9
  int64_t chunk_elements = 4096;   ///< token chunk size: small keeps random access fast
  int64_t segment_files = 1000;    ///< files per resumable segment (<dir>/.prepare-work)
  int64_t max_buffer_mb = 256;     ///< bound on the files parsed ahead of the writer (see Prepare.h)
  std::string run_id;              ///< fixed run id (reproducible bytes); empty: a new one per run
  void visit(config::Visitor& v) override;
};

/// Validation thresholds: a count above its maximum fails the run (exit 4).
/// -1 means no limit (the count is still reported).
struct ValidateThresholds : config::Section {
  int64_t max_parse_failures = 0;
  int64_t max_missing_files = 0;
  int64_t max_empty_files = 0;       ///< files with no notes
  int64_t max_silent_files = 0;      ///< files whose notes all have zero length
  int64_t max_encode_failures = 0;   ///< parsed but not tokenizable (e.g. a time signature outside the set)
  int64_t max_label_problems = 0;    ///< manifest rows with missing or malformed labels or fields
  int64_t max_split_problems = 0;    ///< files without a split, unknown split names, song id mismatches
  int64_t max_song_leaks = 0;        ///< songs in more than one split
  int64_t max_duplicates_within_split = -1;  ///< extra copies of identical files inside one split
  int64_t max_duplicates_across_splits = 0;  ///< identical files in more than one split (leakage)
  int64_t max_shard_problems = 0;    ///< unreadable or inconsistent shards, stale items, leakage inside shards
  int64_t max_out_of_range_tokens = 0;  ///< shard token ids outside [0, vocab_size)
  void visit(config::Visitor& v) override;
};

/// What the corpus is, for the registry entries of models trained on it.
struct DatasetInfo : config::Section {
  std::string id;       ///< e.g. "pop909"; registry training.dataset_id
  std::string license;  ///< SPDX identifier where one exists, e.g. "MIT"; registry training.dataset_license
  std::string version;  ///< optional, e.g. "1.0.0"
  void visit(config::Visitor& v) override;
};

struct PrepareConfig : config::Section {
  config::Path data_root;  ///< where data paths resolve; unset: the config's folder
  DatasetInfo dataset;
  CorpusConfig corpus;
  SplitConfig split;
  tokenizer::TokenizerConfig tokenizer;
  ReaderConfig reader;
  std::string on_error = "fail";      ///< fail | skip: a file that cannot be read, parsed or tokenized
  std::string on_duplicate = "drop";  ///< drop | keep: identical files (by content)
  std::string dedup_key = "file";     ///< file (sha256 of the bytes) | tokens (sha256 of the token ids)
  std::vector<config::Path> dedup_against;  ///< prepared folders whose pieces this corpus must not repeat
  int64_t min_notes = 1;              ///< files with fewer notes are left out (and listed)
  int num_workers = 0;                ///< 0: all cores
  OutputConfig output;
  ValidateThresholds validate;
  void visit(config::Visitor& v) override;
};

/// Reads a prepare config file with `key=value` overrides applied.
PrepareConfig load_prepare_config(const std::string& path, const std::vector<std::string>& overrides = {});

}  // namespace kmidi::corpus
