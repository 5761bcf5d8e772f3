#include "datasets/corpus/Prepare.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "core/Progress.h"
#include "core/Strings.h"
#include "datasets/corpus/detail/KeptCopies.h"
#include "datasets/corpus/detail/OrderedPool.h"
#include "datasets/corpus/detail/PrepareWork.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/shards/ShardReader.h"
#include "datasets/shards/ShardWriter.h"

namespace fs = std::filesystem;

namespace kmidi::corpus {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kTokenizerFile = "tokenizer.json";
constexpr const char* kReportFile = "prepare_report.json";

/// Removes temporary files a killed prepare left in `dir` (names
/// "<artifact>.tmp.<pid>.<n>" whose pid no longer runs).
void remove_stale_temporaries(const std::string& dir, const std::vector<std::string>& artifacts) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    for (const std::string& artifact : artifacts) {
      const std::string prefix = artifact + ".tmp.";
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        spdlog::info("prepare: removing {} left by an interrupted run", entry.path().string());
        fs::remove(entry.path(), ec);
      }
    }
  }
}

/// Throws DataError naming each split that every one of its files left
/// (failed, too short or duplicates), before anything is committed.
void require_items_in_every_split(const PrepareReport& report) {
  std::vector<std::string> reasons;
  for (const SplitSummary& s : report.splits) {
    if (s.items > 0) continue;
    auto count = [&](const std::vector<LeftOutFile>& files) {
      return std::count_if(files.begin(), files.end(), [&](const LeftOutFile& f) { return f.split == s.name; });
    };
    reasons.push_back("split '" + s.name + "' has no items: its files were all left out (" +
                      std::to_string(count(report.failed)) + " failed, " + std::to_string(count(report.too_short)) +
                      " too short, " + std::to_string(count(report.duplicates)) + " duplicates)");
  }
  if (reasons.empty()) return;
  throw DataError(report.output_dir + ": " + strings::join(reasons, "; ") +
                  "; nothing was written (the log lists the files left out)");
}

Json left_out_json(const std::vector<LeftOutFile>& files) {
  Json list = Json::array();
  for (const LeftOutFile& f : files) {
    Json item{{"path", f.path}, {"split", f.split}, {"kind", f.kind}, {"reason", f.reason}};
    if (!f.kept_as.empty()) item["kept_as"] = f.kept_as;
    list.push_back(std::move(item));
  }
  return list;
}

/// The shard's label columns: the corpus's, plus emotion_source (Shard.h)
/// when valence and arousal are among them.
std::vector<shards::LabelColumn> shard_label_columns(const Corpus& corpus) {
  std::vector<shards::LabelColumn> columns = corpus.label_columns;
  auto has = [&](const char* name) {
    return std::any_of(columns.begin(), columns.end(), [&](const shards::LabelColumn& c) { return c.name == name; });
  };
  if (has("valence") && has("arousal") && !has(shards::kEmotionSourceLabel)) {
    columns.push_back(shards::LabelColumn{shards::kEmotionSourceLabel, shards::LabelKind::kText});
  }
  return columns;
}

/// An entry's labels for `columns`: the corpus's, then "real" where a
/// valence or arousal annotation exists (the corpus's labels are annotations).
std::vector<shards::LabelValue> shard_labels(std::vector<shards::LabelValue> labels,
                                             const std::vector<shards::LabelColumn>& corpus_columns,
                                             const std::vector<shards::LabelColumn>& columns) {
  if (columns.size() == corpus_columns.size()) return labels;
  bool annotated = false;
  for (size_t c = 0; c < corpus_columns.size(); ++c) {
    if (corpus_columns[c].name == "valence" || corpus_columns[c].name == "arousal") {
      annotated = annotated || std::isfinite(labels[c].number);
    }
  }
  labels.push_back(shards::LabelValue::of(std::string(annotated ? shards::kEmotionSourceReal : "")));
  return labels;
}

}  // namespace

std::string new_run_id() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%08x", rd());
  return std::string(stamp) + "-" + suffix;
}

std::map<std::string, int64_t> PrepareReport::left_out_counts() const {
  std::map<std::string, int64_t> counts{{"unreadable", 0}, {"unparsable", 0},          {"untokenizable", 0},
                                        {"too_short", 0},  {"duplicate", 0},           {"duplicate_elsewhere", 0}};
  for (const auto* list : {&failed, &too_short, &duplicates, &duplicates_elsewhere}) {
    for (const LeftOutFile& f : *list) ++counts[f.kind];
  }
  return counts;
}

std::string PrepareReport::to_json() const {
  Json j = Json::object();
  j["run_id"] = run_id;
  j["output_dir"] = output_dir;
  j["tokenizer_sha256"] = tokenizer_sha256;
  j["vocab_size"] = vocab_size;
  j["config"] = config_yaml;
  j["files"] = files;
  Json s = Json::array();
  for (const SplitSummary& x : splits) {
    s.push_back(Json{{"name", x.name}, {"shard", x.shard}, {"items", x.items}, {"tokens", x.tokens},
                     {"notes", x.notes}, {"seconds", x.seconds}});
  }
  j["splits"] = s;
  j["failed"] = left_out_json(failed);
  j["too_short"] = left_out_json(too_short);
  j["duplicates"] = left_out_json(duplicates);
  j["duplicates_elsewhere"] = left_out_json(duplicates_elsewhere);
  j["repaired"] = left_out_json(repaired);
  Json counts = Json::object();
  for (const auto& [kind, count] : left_out_counts()) counts[kind] = count;
  j["left_out_counts"] = counts;
  j["encode"] = Json{{"notes_in", encode.notes_in},
                     {"notes_encoded", encode.notes_encoded},
                     {"pitch_out_of_range", encode.pitch_out_of_range},
                     {"drums_out_of_range", encode.drums_out_of_range},
                     {"drums_dropped", encode.drums_dropped},
                     {"durations_clipped", encode.durations_clipped},
                     {"time_signatures_replaced", encode.time_signatures_replaced},
                     {"bars", encode.bars},
                     {"tokens", encode.tokens}};
  j["files_resumed"] = files_resumed;
  j["files_parsed"] = files_parsed;
  j["elapsed_s"] = elapsed_s;
  return j.dump(2) + "\n";
}

namespace {

constexpr const char* kWorkDir = ".prepare-work";
constexpr size_t kBufferCostPerFileByte = 8;  // the file's bytes, its parsed notes and its tokens

using detail::FileOutcome;

/// What a file's outcome depends on; a journal made under other settings is discarded.
std::string outcome_fingerprint(const PrepareConfig& c, const tokenizer::Tokenizer& tok, const std::string& root) {
  return hash::sha256_hex(std::string("kmidi.prepare_outcome.v2\n") + tok.sha256() + "\n" +
                          (c.reader.strict ? "strict" : "lenient") + "\n" + std::to_string(c.reader.max_file_bytes) +
                          "\n" + std::to_string(c.min_notes) + "\n" + std::to_string(c.output.segment_files) + "\n" + root +
                          "\n" + c.dedup_key);
}

struct FileStat {
  int64_t size = -1;  // -1: cannot stat
  int64_t mtime_ns = 0;
};

FileStat stat_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {static_cast<int64_t>(st.st_size), static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

FileOutcome failed(FileOutcome o, const char* kind, std::string reason) {
  o.status = FileOutcome::Status::kFailed;
  o.failure = kind;
  o.reason = std::move(reason);
  o.tokens.clear();
  return o;
}

/// Reads, hashes, parses and tokenizes one file. The token ids are hashed
/// only for dedup_key tokens (hashing ~24 KB of ids a file is not free).
FileOutcome process_file(const std::string& path, const tokenizer::Tokenizer& tok, const midi::ReadOptions& read_options,
                         int64_t min_notes, bool hash_tokens) {
  FileOutcome o;
  std::string bytes;
  try {
    bytes = files::read_all(path);
  } catch (const DataError& err) {
    return failed(std::move(o), "unreadable", err.what());
  }
  o.file_sha256 = hash::sha256_hex(bytes);
  std::optional<midi::Score> score;
  try {
    score.emplace(midi::read_midi_bytes(bytes, path, read_options));
  } catch (const DataError& err) {
    return failed(std::move(o), "unparsable", err.what());
  }
  o.repairs = score->stats.repairs;
  if (!score->stats.warnings.empty()) o.first_warning = score->stats.warnings.front();
  try {
    tok.encode(*score, o.tokens, &o.stats);
  } catch (const DataError& err) {
    return failed(std::move(o), "untokenizable", path + ": " + err.what());
  }
  o.notes = o.stats.notes_encoded;
  o.seconds = score->duration_seconds();
  if (o.notes < min_notes) {
    o.status = FileOutcome::Status::kTooShort;
    o.reason = std::to_string(o.notes) + " note(s) the tokenizer keeps (of " + std::to_string(o.stats.notes_in) +
               "), fewer than min_notes " + std::to_string(min_notes);
    o.tokens.clear();
    return o;
  }
  if (hash_tokens) o.tokens_sha256 = detail::tokens_sha256(o.tokens);
  return o;
}

std::string on_error_fail_message(const std::string& reason) {
  return reason + " (on_error: fail; set on_error: skip to leave such files out and list them)";
}

/// A sha256 in 32 bytes (hex strings would cost ~100 bytes a file).
using detail::Key;

bool parse_key(const std::string& hex, Key& key) {
  if (hex.size() != 64) return false;
  for (size_t b = 0; b < 32; ++b) key[b] = static_cast<uint8_t>(std::stoi(hex.substr(2 * b, 2), nullptr, 16));
  return true;
}

/// The pieces of the dedup_against folders, by key.
class ExternalIndex {
 public:
  /// Returns the kept copy's name, or nullptr.
  const std::string* find(const Key& key) const {
    const auto it = std::lower_bound(keys_.begin(), keys_.end(), std::make_pair(key, uint32_t{0}));
    return it != keys_.end() && it->first == key ? &names_[it->second] : nullptr;
  }
  void add(const Key& key, std::string name) {
    keys_.emplace_back(key, static_cast<uint32_t>(names_.size()));
    names_.push_back(std::move(name));
  }
  void finish() { std::sort(keys_.begin(), keys_.end()); }
  size_t size() const { return keys_.size(); }

 private:
  std::vector<std::pair<Key, uint32_t>> keys_;
  std::vector<std::string> names_;
};

/// Reads the shards of every dedup_against folder; throws DataError naming
/// the key for a folder that is not a prepare output or, with dedup_key
/// tokens, was prepared with another tokenizer.
ExternalIndex load_external_index(const PrepareConfig& config, const tokenizer::Tokenizer& tok) {
  ExternalIndex index;
  const bool by_tokens = config.dedup_key == "tokens";
  for (size_t d = 0; d < config.dedup_against.size(); ++d) {
    const std::string dir = config.dedup_against[d].str();
    const std::string key = "dedup_against[" + std::to_string(d) + "]";
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw DataError(key + ": " + dir + ": not a folder; expected a kmidi prepare output");
    if (fs::equivalent(dir, config.output.dir.str(), ec)) throw DataError(key + ": " + dir + " is output.dir itself");
    std::vector<std::string> shard_files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.size() > 3 && name.compare(name.size() - 3, 3, ".h5") == 0) shard_files.push_back(entry.path().string());
    }
    std::sort(shard_files.begin(), shard_files.end());
    if (shard_files.empty()) throw DataError(key + ": " + dir + ": no token shards (<split>.h5); expected a kmidi prepare output");
    for (const std::string& path : shard_files) {
      const shards::ShardReader shard(path);
      if (by_tokens && shard.tokenizer_sha256() != tok.sha256()) {
        throw DataError(key + ": " + path + " was prepared with another tokenizer (sha256 " + shard.tokenizer_sha256() +
                        ", this config's is " + tok.sha256() +
                        "); dedup_key tokens compares token ids: prepare it with this tokenizer, or use dedup_key: file");
      }
      for (int64_t i = 0; i < shard.size(); ++i) {
        const shards::ShardItem item = shard.item(i);
        Key k{};
        if (parse_key(by_tokens ? detail::tokens_sha256(shard.read(i)) : item.sha256, k)) index.add(k, path + ":" + item.source);
      }
    }
  }
  index.finish();
  return index;
}

/// Where one run's work lives and how it is cut: segments of per_segment
/// consecutive files in processing order. The order is splits from the last
/// of split.names to the first, corpus order within each: the first copy of
/// a file the writer meets is then the one to keep (test before validation
/// before train, then the first path), so duplicates are decided while
/// streaming. Only where each segment starts is stored (a few bytes a
/// segment, not a few a file); its files are found by scanning the corpus's
/// split bytes from there.
class Work {
 public:
  Work(const Corpus& corpus, std::string dir, size_t per_segment)
      : dir(std::move(dir)), per_segment(per_segment), corpus_(corpus) {
    const size_t splits = corpus.split_names.size();
    for (size_t rank = 0; rank < splits; ++rank) {
      const uint8_t split = static_cast<uint8_t>(splits - 1 - rank);
      for (size_t i = 0; i < corpus.size(); ++i) {
        if (corpus.split_index(i) != split) continue;  // every file has a split here (require_no_problems ran)
        if (files_ % per_segment == 0) starts_.push_back(Cursor{static_cast<uint8_t>(rank), static_cast<uint32_t>(i)});
        ++files_;
      }
    }
  }

  std::string dir;
  size_t per_segment;
  size_t files() const { return files_; }
  size_t segments() const { return starts_.size(); }
  size_t begin(size_t segment) const { return segment * per_segment; }
  size_t end(size_t segment) const { return std::min(files_, (segment + 1) * per_segment); }

  /// The corpus indices of a segment's files, in processing order.
  void segment_files(size_t segment, std::vector<uint32_t>& out) const {
    out.clear();
    const size_t count = end(segment) - begin(segment);
    const size_t splits = corpus_.split_names.size();
    Cursor at = starts_[segment];
    while (out.size() < count) {
      if (corpus_.split_index(at.file) == splits - 1 - at.rank) out.push_back(at.file);
      if (++at.file == corpus_.size()) {
        at.file = 0;
        ++at.rank;
      }
    }
  }

 private:
  struct Cursor {
    uint8_t rank;   // position of the split in processing order
    uint32_t file;  // corpus index to look at next
  };
  const Corpus& corpus_;
  std::vector<Cursor> starts_;
  size_t files_ = 0;
};

/// A segment's files as they are on disk: a changed file redoes its segment.
/// `files` gets the segment's corpus indices and `sizes` each file's size
/// (-1: cannot stat).
std::string listing_hash(const Corpus& corpus, const Work& work, size_t segment, std::vector<uint32_t>& files,
                         std::vector<int64_t>& sizes) {
  work.segment_files(segment, files);
  std::string text;
  sizes.clear();
  for (const uint32_t i : files) {
    const FileStat st = stat_file(corpus.path(i));
    sizes.push_back(st.size);
    text += std::string(corpus.relative(i)) + '\0' + std::to_string(st.size) + '\0' + std::to_string(st.mtime_ns) + '\n';
  }
  return hash::sha256_hex(text);
}

/// Takes every file's outcome in processing order: leaves out duplicates,
/// failures and short files (listing each in the report) and streams the
/// rest into one shard writer per split. Nothing is committed before commit().
class ShardSink {
 public:
  ShardSink(const PrepareConfig& config, const Corpus& corpus, const tokenizer::Tokenizer& tok,
            const ExternalIndex& external, PrepareReport& report)
      : config_(config),
        corpus_(corpus),
        tok_(tok),
        external_(external),
        report_(report),
        columns_(shard_label_columns(corpus)),
        kept_(config.on_duplicate == "drop" ? corpus.size() : 0) {
    shards::ShardWriterOptions options;
    options.chunk_elements = config.output.chunk_elements;
    options.deflate_level = config.output.deflate_level;
    options.run_id = report.run_id;
    const shards::ShardVocab vocab{tok.vocab_size(), tok.pad_id(), tok.sha256()};
    for (const std::string& s : corpus.split_names) {
      writers_[s] = std::make_unique<shards::ShardWriter>(
          (fs::path(report.output_dir) / shards::shard_file_name(s)).string(), s, vocab, columns_, options);
      report.splits.push_back(SplitSummary{s, writers_[s]->path()});
      writers_[s]->park();  // closed until its split's files come: one writer is open at a time
    }
  }

  /// The outcome of corpus file `i`.
  void add(size_t i, const FileOutcome& o) {
    park_finished_split(corpus_.split_index(i));
    if (left_out_as_duplicate(i, o)) return;
    const std::string relative(corpus_.relative(i));
    const std::string& split = corpus_.split(i);
    if (o.repairs > 0) report_.repaired.push_back(LeftOutFile{relative, split, o.first_warning, "repaired", ""});
    if (o.status == FileOutcome::Status::kFailed) {
      if (config_.on_error == "fail") throw DataError(on_error_fail_message(o.reason));
      spdlog::warn("prepare: skipping {}: {}", relative, o.reason);
      report_.failed.push_back(LeftOutFile{relative, split, o.reason, o.failure, ""});
      return;
    }
    if (o.status == FileOutcome::Status::kTooShort) {
      report_.too_short.push_back(LeftOutFile{relative, split, o.reason, "too_short", ""});
      return;
    }
    write(i, relative, split, o);
  }

  /// Sorts the report's lists into corpus order (the corpus is sorted by
  /// path) and commits the shards.
  void commit() {
    for (auto* list : {&report_.failed, &report_.too_short, &report_.duplicates, &report_.duplicates_elsewhere,
                       &report_.repaired}) {
      std::stable_sort(list->begin(), list->end(),
                       [](const LeftOutFile& a, const LeftOutFile& b) { return a.path < b.path; });
    }
    // The open writer first, so that the others reopen one at a time.
    if (current_split_ != Corpus::kNoSplit) writers_.at(corpus_.split_names[current_split_])->commit();
    for (auto& [name, writer] : writers_) writer->commit();
  }

 private:
  /// Files come split after split: a writer whose split is over frees its
  /// buffers until commit, so one writer's worth is held at a time.
  void park_finished_split(uint8_t split) {
    if (split == current_split_) return;
    if (current_split_ != Corpus::kNoSplit) writers_.at(corpus_.split_names[current_split_])->park();
    current_split_ = split;
  }

  bool left_out_as_duplicate(size_t i, const FileOutcome& o) {
    const bool by_tokens = config_.dedup_key == "tokens";
    Key k{};
    if (!parse_key(by_tokens ? o.tokens_sha256 : o.file_sha256, k)) return false;
    if (const std::string* copy = external_.find(k)) {
      const std::string key_name = by_tokens ? "token ids" : "file bytes";
      report_.duplicates_elsewhere.push_back(
          LeftOutFile{std::string(corpus_.relative(i)), corpus_.split(i), "same " + key_name + " as " + *copy, "duplicate_elsewhere", *copy});
      return true;
    }
    if (config_.on_duplicate != "drop") return false;
    const std::optional<uint32_t> kept =
        kept_.keep_first(k, static_cast<uint32_t>(i), [&](uint32_t file) { return key_of(file, by_tokens) == k; });
    if (!kept) return false;
    const std::string name = std::string(corpus_.relative(*kept)) + " (" + corpus_.split(*kept) + ")";
    report_.duplicates.push_back(
        LeftOutFile{std::string(corpus_.relative(i)), corpus_.split(i), "identical to " + name, "duplicate", name});
    return true;
  }

  /// Corpus file `i`'s key, computed again: the table keeps 64 bits of each.
  Key key_of(size_t i, bool by_tokens) const {
    std::string hex;
    if (by_tokens) {
      hex = process_file(corpus_.path(i), tok_, config_.reader.options(), config_.min_notes, true).tokens_sha256;
    } else {
      try {
        hex = hash::sha256_hex(files::read_all(corpus_.path(i)));
      } catch (const DataError&) {
        // changed since it was kept: not a copy
      }
    }
    Key k{};
    if (!parse_key(hex, k)) k.fill(0);
    return k;
  }

  void write(size_t i, const std::string& relative, const std::string& split, const FileOutcome& o) {
    report_.encode.add(o.stats);
    shards::ShardItem item;
    item.source = relative;
    item.song_id = std::string(corpus_.song_id(i));
    item.sha256 = o.file_sha256;
    item.num_notes = o.notes;
    item.duration_s = o.seconds;
    item.labels = shard_labels(corpus_.labels(i), corpus_.label_columns, columns_);
    writers_.at(split)->add(o.tokens.data(), o.tokens.size(), item);
    for (SplitSummary& s : report_.splits) {
      if (s.name != split) continue;
      ++s.items;
      s.tokens += static_cast<int64_t>(o.tokens.size());
      s.notes += o.notes;
      s.seconds += o.seconds;
    }
  }

  const PrepareConfig& config_;
  const Corpus& corpus_;
  const tokenizer::Tokenizer& tok_;
  const ExternalIndex& external_;
  PrepareReport& report_;
  const std::vector<shards::LabelColumn> columns_;
  std::map<std::string, std::unique_ptr<shards::ShardWriter>> writers_;
  detail::KeptCopies kept_;
  uint8_t current_split_ = Corpus::kNoSplit;
};

/// Hands a finished segment's outcomes, read back from its file, to the sink.
void replay_segment(const Work& work, size_t s, ShardSink& sink) {
  const std::string path = detail::segment_path(work.dir, s);
  detail::SegmentReader reader(path);
  std::vector<uint32_t> files;
  work.segment_files(s, files);
  FileOutcome o;
  size_t k = 0;
  for (; k < files.size() && reader.next(o); ++k) sink.add(files[k], o);
  if (k != files.size() || reader.next(o)) {
    throw DataError(path + ": does not hold the " + std::to_string(files.size()) +
                    " file outcomes expected; delete " + work.dir + " and run prepare again");
  }
}

/// What this run has to do: the journal, each segment's listing hash, and
/// the segments left to parse.
struct Plan {
  detail::Journal journal;
  std::vector<std::string> listing;
  std::vector<uint32_t> todo;  // segments
  size_t todo_files = 0;
};

/// Reads the journal (one made under other settings is discarded), keeps the
/// segments that are finished and still describe the corpus, and sets the
/// report's run id and resume counts.
Plan plan_work(const PrepareConfig& config, const Corpus& corpus, const tokenizer::Tokenizer& tok, const Work& work,
               PrepareReport& report) {
  const std::string fingerprint = outcome_fingerprint(config, tok, corpus.root);
  Plan plan;
  detail::Journal& journal = plan.journal;
  journal = detail::read_journal(work.dir);
  if (!journal.fingerprint.empty() && journal.fingerprint != fingerprint) {
    spdlog::info("prepare: discarding {}: made with another tokenizer, reader, min_notes, segment_files or dedup_key", work.dir);
  }
  if (journal.fingerprint != fingerprint) journal = detail::Journal{fingerprint};
  journal.segment_files = static_cast<int64_t>(work.per_segment);
  journal.done.resize(work.segments());
  plan.listing.resize(work.segments());
  size_t finished = 0;
  std::vector<uint32_t> files;
  std::vector<int64_t> sizes;
  for (size_t s = 0; s < work.segments(); ++s) {
    plan.listing[s] = listing_hash(corpus, work, s, files, sizes);
    std::error_code ec;
    if (journal.done[s] == plan.listing[s] && fs::is_regular_file(detail::segment_path(work.dir, s), ec)) {
      ++finished;
      report.files_resumed += static_cast<int64_t>(files.size());
      continue;
    }
    journal.done[s].clear();
    plan.todo.push_back(static_cast<uint32_t>(s));
    plan.todo_files += files.size();
  }
  if (!config.output.run_id.empty()) journal.run_id = config.output.run_id;
  else if (finished == 0 || journal.run_id.empty()) journal.run_id = new_run_id();
  report.run_id = journal.run_id;
  report.files_parsed = static_cast<int64_t>(plan.todo_files);
  detail::write_journal(work.dir, journal);
  if (finished > 0) {
    spdlog::info("prepare: resuming run {}: {} of {} files done in {} finished segment(s) of {}; parsing the other {}",
                 report.run_id, report.files_resumed, work.files(), finished, work.segments(), plan.todo_files);
  }
  return plan;
}

/// Files handed to the workers at once: whole segments, at least this many
/// files (the workers wait for the writer only between batches).
constexpr size_t kBatchFiles = 4096;

/// A batch of files to parse: whole segments, each file with its segment
/// and its size (for the parse budget).
struct Batch {
  struct File {
    uint32_t corpus_index;
    uint32_t segment;
    uint32_t bytes;  // saturated
    bool last_of_segment;
  };
  std::vector<File> files;

  void add_segment(const Corpus& corpus, const Work& work, uint32_t segment, std::vector<uint32_t>& scratch) {
    work.segment_files(segment, scratch);
    for (size_t k = 0; k < scratch.size(); ++k) {
      const int64_t bytes = std::max<int64_t>(stat_file(corpus.path(scratch[k])).size, 0);
      files.push_back(File{scratch[k], segment, static_cast<uint32_t>(std::min<int64_t>(bytes, UINT32_MAX)),
                           k + 1 == scratch.size()});
    }
  }
};

/// Every file's outcome, in processing order, to the sink: finished segments
/// of an interrupted run are read back; the others are parsed on all workers
/// and each outcome is written to its segment (for a later resume) as it
/// reaches the sink, so the shards are written while files are parsed.
void stream_outcomes(const PrepareConfig& config, const Corpus& corpus, const tokenizer::Tokenizer& tok,
                     const Work& work, Plan& plan, ShardSink& sink) {
  size_t replayed = 0;  // segments before this one have reached the sink
  auto replay_finished_before = [&](size_t segment) {
    for (; replayed < segment; ++replayed) {
      if (!plan.journal.done[replayed].empty()) replay_segment(work, replayed, sink);
    }
  };
  if (plan.todo_files > 0) {
    const int threads = detail::worker_count(config.num_workers, plan.todo_files);
    const size_t budget = static_cast<size_t>(config.output.max_buffer_mb) << 20;
    const midi::ReadOptions read_options = config.reader.options();
    spdlog::info("prepare: parsing {} files with {} worker(s), at most {} MB ahead of the writer", plan.todo_files,
                 threads, config.output.max_buffer_mb);
    std::unique_ptr<detail::SegmentWriter> writer;
    Progress progress("prepare", static_cast<int64_t>(plan.todo_files), "files");
    Batch batch;
    std::vector<uint32_t> scratch;
    for (size_t t = 0; t < plan.todo.size();) {
      batch.files.clear();
      while (t < plan.todo.size() && batch.files.size() < kBatchFiles) batch.add_segment(corpus, work, plan.todo[t++], scratch);
      detail::ordered_parallel<FileOutcome>(
          batch.files.size(), threads, static_cast<size_t>(threads) * 16,
          [&](size_t k) {
            return process_file(corpus.path(batch.files[k].corpus_index), tok, read_options, config.min_notes,
                                config.dedup_key == "tokens");
          },
          [&](size_t k, FileOutcome&& o) {
            const Batch::File& f = batch.files[k];
            progress.advance();
            if (!writer) {
              replay_finished_before(f.segment);
              writer = std::make_unique<detail::SegmentWriter>(detail::segment_path(work.dir, f.segment), tok.vocab_size());
            }
            writer->add(o);
            sink.add(f.corpus_index, o);
            if (!f.last_of_segment) return;
            writer->commit();
            writer.reset();
            replayed = f.segment + 1;
            plan.journal.done[f.segment] = plan.listing[f.segment];
            detail::write_journal(work.dir, plan.journal);
            files::fault_point("prepare_segment", detail::segment_path(work.dir, f.segment));
          },
          [&](size_t k) { return static_cast<size_t>(batch.files[k].bytes) * kBufferCostPerFileByte; }, budget);
    }
    progress.finish();
  }
  replay_finished_before(work.segments());
}

}  // namespace

PrepareReport run_prepare(const PrepareConfig& config) {
  const auto start = std::chrono::steady_clock::now();
  const Corpus corpus = load_corpus(config.corpus, config.split);
  require_no_problems(corpus);
  if (const std::string empty = emptiness(corpus, config.corpus); !empty.empty()) throw DataError(empty);
  const tokenizer::Tokenizer tok(config.tokenizer);
  const ExternalIndex external = load_external_index(config, tok);
  const std::string out_dir = config.output.dir.str();
  files::ensure_dir(out_dir);
  std::vector<std::string> artifacts{kTokenizerFile, kReportFile};
  for (const std::string& s : corpus.split_names) artifacts.push_back(shards::shard_file_name(s));
  remove_stale_temporaries(out_dir, artifacts);

  const Work work(corpus, (fs::path(out_dir) / kWorkDir).string(), static_cast<size_t>(config.output.segment_files));
  files::ensure_dir(work.dir);
  std::vector<std::string> work_files{"journal.json"};
  for (size_t s = 0; s < work.segments(); ++s) work_files.push_back(fs::path(detail::segment_path(work.dir, s)).filename().string());
  remove_stale_temporaries(work.dir, work_files);

  PrepareReport report;
  report.output_dir = out_dir;
  report.tokenizer_sha256 = tok.sha256();
  report.vocab_size = tok.vocab_size();
  PrepareConfig resolved = config;
  report.config_yaml = config::to_yaml(resolved);
  report.files = static_cast<int64_t>(corpus.size());
  spdlog::info("prepare: {} files under {}, tokenizer vocab {}, {} piece(s) to deduplicate against", work.files(),
               corpus.root, tok.vocab_size(), external.size());
  try {
    Plan plan = plan_work(config, corpus, tok, work, report);
    ShardSink sink(config, corpus, tok, external, report);
    stream_outcomes(config, corpus, tok, work, plan, sink);
    require_items_in_every_split(report);
    // Commit: shards first, then the tokenizer they name, then the report.
    sink.commit();
  } catch (const std::exception&) {
    // An error (not a kill) leaves nothing behind: the next run starts afresh.
    std::error_code ec;
    fs::remove_all(work.dir, ec);
    throw;
  }
  tok.save((fs::path(out_dir) / kTokenizerFile).string());
  report.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  files::write_atomic((fs::path(out_dir) / kReportFile).string(), report.to_json());
  std::error_code ec;
  fs::remove_all(work.dir, ec);
  for (const SplitSummary& s : report.splits) {
    spdlog::info("prepare: {} {} items, {} tokens -> {}", s.name, s.items, s.tokens, s.shard);
  }
  const auto counts = report.left_out_counts();
  std::string left_out;
  for (const auto& [kind, count] : counts) left_out += (left_out.empty() ? "" : ", ") + kind + " " + std::to_string(count);
  spdlog::info("prepare: left out: {}", left_out);
  return report;
}

}  // namespace kmidi::corpus
