#include "datasets/corpus/detail/PrepareWork.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/Errors.h"
#include "core/Hash.h"

namespace kmidi::corpus::detail {
namespace {

constexpr char kSegmentMagic[] = "kmidi.prepare_segment.v2\n";  // then one byte: the token width (2 or 4)
constexpr const char* kJournalFile = "journal.json";
constexpr const char* kJournalFormat = "kmidi.prepare_journal";
constexpr int kJournalVersion = 1;

void put_i64(files::AtomicFile& f, int64_t v) { f.write(&v, sizeof v); }
void put_str(files::AtomicFile& f, const std::string& s) {
  put_i64(f, static_cast<int64_t>(s.size()));
  f.write(s);
}

int64_t* stat_fields(tokenizer::EncodeStats& s, size_t& n) {
  static_assert(sizeof(tokenizer::EncodeStats) == 9 * sizeof(int64_t), "EncodeStats gained a field: store it");
  n = 9;
  return &s.notes_in;
}

}  // namespace

std::string tokens_sha256(const std::vector<int32_t>& tokens) {
  static_assert(sizeof(int32_t) == 4, "int32");
  // Little-endian hosts only (x86-64, aarch64): the ids' bytes as they are.
  return hash::sha256_hex(std::string_view(reinterpret_cast<const char*>(tokens.data()), tokens.size() * sizeof(int32_t)));
}

SegmentWriter::SegmentWriter(const std::string& path, int32_t vocab_size)
    : file_(path), narrow_(vocab_size <= INT16_MAX) {
  file_.write(kSegmentMagic);
  const uint8_t width = narrow_ ? 2 : 4;
  file_.write(&width, 1);
}

void SegmentWriter::add(const FileOutcome& o) {
  const uint8_t status = static_cast<uint8_t>(o.status);
  file_.write(&status, 1);
  put_str(file_, o.failure);
  put_str(file_, o.reason);
  put_str(file_, o.file_sha256);
  put_str(file_, o.tokens_sha256);
  put_str(file_, o.first_warning);
  put_i64(file_, o.repairs);
  put_i64(file_, o.notes);
  file_.write(&o.seconds, sizeof o.seconds);
  tokenizer::EncodeStats stats = o.stats;
  size_t n = 0;
  file_.write(stat_fields(stats, n), n * sizeof(int64_t));
  put_i64(file_, static_cast<int64_t>(o.tokens.size()));
  if (!narrow_) {
    file_.write(o.tokens.data(), o.tokens.size() * sizeof(int32_t));
    return;
  }
  narrow_ids_.assign(o.tokens.begin(), o.tokens.end());  // ids are < vocab_size <= INT16_MAX
  file_.write(narrow_ids_.data(), narrow_ids_.size() * sizeof(int16_t));
}

void SegmentWriter::commit() { file_.commit(); }

SegmentReader::SegmentReader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
  if (!in_) throw DataError(path + ": cannot open the prepare segment");
  char magic[sizeof kSegmentMagic - 1];
  read(magic, sizeof magic);
  if (std::memcmp(magic, kSegmentMagic, sizeof magic) != 0) throw DataError(path + ": not a kmidi prepare segment (v2)");
  uint8_t width = 0;
  read(&width, 1);
  if (width != 2 && width != 4) throw DataError(path + ": corrupt prepare segment (token width " + std::to_string(width) + ")");
  width_ = width;
}

void SegmentReader::read(void* data, size_t size) {
  if (!in_.read(static_cast<char*>(data), static_cast<std::streamsize>(size))) {
    throw DataError(path_ + ": truncated prepare segment at byte " + std::to_string(static_cast<long long>(in_.tellg())));
  }
}

bool SegmentReader::next(FileOutcome& o, bool with_tokens) {
  uint8_t status = 0;
  if (in_.peek() == std::char_traits<char>::eof()) return false;
  read(&status, 1);
  if (status > 2) throw DataError(path_ + ": corrupt prepare segment (status " + std::to_string(status) + ")");
  o.status = static_cast<FileOutcome::Status>(status);
  auto get_i64 = [&] {
    int64_t v = 0;
    read(&v, sizeof v);
    return v;
  };
  auto get_str = [&](std::string& s) {
    const int64_t size = get_i64();
    if (size < 0 || size > (int64_t{1} << 24)) throw DataError(path_ + ": corrupt prepare segment (string size)");
    s.resize(static_cast<size_t>(size));
    read(s.data(), s.size());
  };
  get_str(o.failure);
  get_str(o.reason);
  get_str(o.file_sha256);
  get_str(o.tokens_sha256);
  get_str(o.first_warning);
  o.repairs = get_i64();
  o.notes = get_i64();
  read(&o.seconds, sizeof o.seconds);
  size_t n = 0;
  read(stat_fields(o.stats, n), n * sizeof(int64_t));
  const int64_t count = get_i64();
  if (count < 0) throw DataError(path_ + ": corrupt prepare segment (token count)");
  o.tokens.resize(with_tokens ? static_cast<size_t>(count) : 0);
  if (!with_tokens) {
    in_.seekg(count * width_, std::ios::cur);
  } else if (width_ == 4) {
    read(o.tokens.data(), o.tokens.size() * sizeof(int32_t));
  } else {
    narrow_ids_.resize(o.tokens.size());
    read(narrow_ids_.data(), narrow_ids_.size() * sizeof(int16_t));
    std::copy(narrow_ids_.begin(), narrow_ids_.end(), o.tokens.begin());
  }
  return true;
}

std::string segment_path(const std::string& dir, size_t segment) {
  char name[32];
  std::snprintf(name, sizeof name, "segment-%06zu.bin", segment);
  return dir + "/" + name;
}

Journal read_journal(const std::string& dir) {
  Journal j;
  try {
    const auto doc = nlohmann::json::parse(files::read_all(dir + "/" + kJournalFile));
    if (doc.at("format") != kJournalFormat || doc.at("version") != kJournalVersion) return {};
    j.fingerprint = doc.at("fingerprint").get<std::string>();
    j.run_id = doc.at("run_id").get<std::string>();
    j.segment_files = doc.at("segment_files").get<int64_t>();
    j.done = doc.at("done").get<std::vector<std::string>>();
  } catch (const std::exception&) {
    return {};  // absent or unreadable: start afresh
  }
  return j;
}

void write_journal(const std::string& dir, const Journal& j) {
  nlohmann::ordered_json doc{{"format", kJournalFormat},   {"version", kJournalVersion},
                             {"fingerprint", j.fingerprint}, {"run_id", j.run_id},
                             {"segment_files", j.segment_files}, {"done", j.done}};
  files::write_atomic(dir + "/" + kJournalFile, doc.dump(1) + "\n");
}

}  // namespace kmidi::corpus::detail
