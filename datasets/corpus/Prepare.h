#pragma once
// `kmidi prepare`: a corpus to token shards, one per split, with
// tokenizer.json and prepare_report.json beside them (layout in
// datasets/shards/Shard.h).
//
// Files are read, hashed, parsed and tokenized in parallel; shards receive
// pieces in corpus order (sorted relative paths), so the output does not
// depend on scheduling. Nothing is committed until every file is done: a
// failed or interrupted prepare leaves the previous output as it was (each
// file is replaced atomically; shards carry the tokenizer's sha256, so a mix
// of old and new files is detected by readers).

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/corpus/PrepareConfig.h"
#include "datasets/tokenizer/Tokenizer.h"

namespace kmidi::corpus {

/// A file left out of the shards, and why.
struct LeftOutFile {
  std::string path;    ///< relative to corpus.root
  std::string split;
  std::string reason;  ///< the reader's or tokenizer's message, or the rule that excluded it
};

struct SplitSummary {
  std::string name;
  std::string shard;  ///< absolute path of <split>.h5
  int64_t items = 0, tokens = 0, notes = 0;
  double seconds = 0.0;
};

struct PrepareReport {
  std::string run_id;
  std::string output_dir;
  std::string tokenizer_sha256;
  int32_t vocab_size = 0;
  std::string config_yaml;  ///< the resolved config the run used
  int64_t files = 0;  ///< corpus entries considered
  std::vector<SplitSummary> splits;
  std::vector<LeftOutFile> failed;      ///< unreadable, unparsable or untokenizable (on_error: skip)
  std::vector<LeftOutFile> too_short;   ///< fewer than min_notes notes
  std::vector<LeftOutFile> duplicates;  ///< identical to a kept file (on_duplicate: drop); reason names it
  std::vector<LeftOutFile> repaired;    ///< lenient reader repairs (reader.strict: false); reason: first warning
  tokenizer::EncodeStats encode;
  double elapsed_s = 0.0;
  /// The report as JSON (what prepare_report.json holds).
  std::string to_json() const;
};

/// Runs prepare. Throws DataError for an unusable corpus description or, with
/// on_error: fail, the first file that cannot be read, parsed or tokenized.
PrepareReport run_prepare(const PrepareConfig& config);

/// A stable identifier for a run: UTC time and 32 random bits.
std::string new_run_id();

}  // namespace kmidi::corpus
