#pragma once
// `kmidi prepare`: a corpus to token shards, one per split, with
// tokenizer.json and prepare_report.json beside them (layout in
// datasets/shards/Shard.h).
//
// Files are read, hashed, parsed and tokenized in parallel (num_workers);
// results reach the writer in corpus order (sorted relative paths), so the
// output does not depend on scheduling: with a fixed output.run_id, shards,
// tokenizer.json and the report (but for its timings) are byte-identical
// whatever the thread count, and whether or not the run was resumed.
//
// Scale. The writer takes files split by split (the last of split.names
// first), in corpus order within each. Each outcome (status, hashes, tokens)
// goes to the shards at once (their chunks compressed on all cores while
// workers parse on) and to a segment file of output.segment_files files in
// <dir>/.prepare-work, with a journal naming the finished segments (each
// written atomically). A prepare that is killed or interrupted resumes after
// its last finished segment when run again with the same tokenizer, reader,
// min_notes and dedup_key (changed labels still reuse the segments; a changed file
// redoes its segment, changed splits reorder and redo them): finished
// segments are read back into the shards and the rest is parsed. Memory is bounded by
// output.max_buffer_mb (files parsed ahead of the writer) and a few bytes per
// file, not by the corpus's tokens.
//
// Duplicates. dedup_key says what identical means: file (sha256 of the bytes)
// or tokens (of the token ids: the same music re-saved with other metadata).
// Within the corpus, on_duplicate: drop keeps one copy (test before
// validation before train, then the first path). dedup_against lists other
// prepared folders; a piece they hold is left out here and listed with the
// copy it repeats, so that the same song in two corpora is counted once.
//
// Nothing is committed until every file is done: a failed or interrupted
// prepare leaves the previous output as it was (each file is replaced
// atomically; shards carry the tokenizer's sha256, so a mix of old and new
// files is detected by readers). A prepare that fails with an error removes
// its work folder; one that is killed keeps it for the next run.

#include <cstdint>
#include <map>
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
  std::string kind;    ///< unreadable | unparsable | untokenizable | too_short | duplicate | duplicate_elsewhere | repaired
  std::string kept_as; ///< duplicates: the copy kept ("<relative> (<split>)" or "<folder>/<split>.h5:<source>")
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
  std::vector<LeftOutFile> duplicates_elsewhere;  ///< identical to a piece of a dedup_against folder
  std::vector<LeftOutFile> repaired;    ///< lenient reader repairs (reader.strict: false); reason: first warning
  tokenizer::EncodeStats encode;
  int64_t files_resumed = 0;  ///< outcomes taken from an interrupted run's finished segments
  int64_t files_parsed = 0;   ///< files read and tokenized by this run
  double elapsed_s = 0.0;
  /// Files left out per kind (LeftOutFile::kind, repaired excluded).
  std::map<std::string, int64_t> left_out_counts() const;
  /// The report as JSON (what prepare_report.json holds).
  std::string to_json() const;
};

/// Runs prepare. Throws DataError for an unusable corpus description or, with
/// on_error: fail, the first file that cannot be read, parsed or tokenized.
PrepareReport run_prepare(const PrepareConfig& config);

/// A stable identifier for a run: UTC time and 32 random bits.
std::string new_run_id();

}  // namespace kmidi::corpus
