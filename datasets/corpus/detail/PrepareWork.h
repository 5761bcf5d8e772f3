#pragma once
// The work folder of a resumable prepare (<output.dir>/.prepare-work): one
// segment file per output.segment_files consecutive corpus files holding each
// file's outcome and tokens, and a journal naming the finished segments.
// Private to prepare; the format only has to survive between two runs of the
// same build, so it is versioned and anything unexpected is discarded.

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/Files.h"
#include "datasets/tokenizer/Tokenizer.h"

namespace kmidi::corpus::detail {

/// What prepare learnt from one corpus file.
struct FileOutcome {
  enum class Status : uint8_t { kOk = 0, kFailed = 1, kTooShort = 2 };
  Status status = Status::kOk;
  std::string failure;        ///< kFailed: unreadable | unparsable | untokenizable
  std::string reason;         ///< kFailed, kTooShort: why
  std::string file_sha256;    ///< hex of the file's bytes ("" when unreadable)
  std::string tokens_sha256;  ///< hex of the token ids as little-endian int32 ("" unless kOk)
  std::string first_warning;  ///< the lenient reader's first repair
  int64_t repairs = 0;
  int64_t notes = 0;
  double seconds = 0.0;
  tokenizer::EncodeStats stats;
  std::vector<int32_t> tokens;  ///< kOk only
};

/// sha256 hex of token ids as little-endian int32.
std::string tokens_sha256(const std::vector<int32_t>& tokens);

/// Appends outcomes to a segment file, committed atomically. Token ids are
/// stored as int16 when the vocabulary fits (half the bytes to write).
class SegmentWriter {
 public:
  SegmentWriter(const std::string& path, int32_t vocab_size);
  void add(const FileOutcome& outcome);
  void commit();

 private:
  files::AtomicFile file_;
  bool narrow_;
  std::vector<int16_t> narrow_ids_;
};

/// Reads a segment file's outcomes in order; throws DataError naming the file
/// when it is truncated or of another format.
class SegmentReader {
 public:
  explicit SegmentReader(const std::string& path);
  /// The next outcome; false at the end. `with_tokens` false skips the token ids.
  bool next(FileOutcome& out, bool with_tokens = true);

 private:
  void read(void* data, size_t size);
  std::string path_;
  std::ifstream in_;
  int64_t left_ = 0;
  int64_t width_ = 4;  // bytes per stored token id
  std::vector<int16_t> narrow_ids_;
};

/// The journal: which segments are finished, for which inputs.
struct Journal {
  std::string fingerprint;  ///< sha256 of the settings the outcomes depend on
  std::string run_id;       ///< kept by a resumed run
  int64_t segment_files = 0;
  std::vector<std::string> done;  ///< per segment: its listing hash when finished, else ""
};

/// The journal in `dir`, or nullopt-like empty fingerprint when absent or unreadable.
Journal read_journal(const std::string& dir);
/// Replaces the journal in `dir` atomically.
void write_journal(const std::string& dir, const Journal& journal);

std::string segment_path(const std::string& dir, size_t segment);

}  // namespace kmidi::corpus::detail
