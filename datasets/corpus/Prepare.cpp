#include "datasets/corpus/Prepare.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <random>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "core/Progress.h"
#include "core/Strings.h"
#include "datasets/corpus/detail/OrderedPool.h"
#include "datasets/midi/MidiReader.h"
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

struct Hashed {
  std::string sha256;
  std::string error;  // non-empty: unreadable
};

struct Processed {
  enum class Status { kOk, kFailed, kTooShort } status = Status::kOk;
  std::string reason;
  std::vector<int32_t> tokens;
  int64_t notes = 0;
  double seconds = 0.0;
  tokenizer::EncodeStats stats;
  int64_t repairs = 0;
  std::string first_warning;
};

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
  for (const LeftOutFile& f : files) list.push_back(Json{{"path", f.path}, {"split", f.split}, {"reason", f.reason}});
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
std::vector<shards::LabelValue> shard_labels(const CorpusEntry& e, const std::vector<shards::LabelColumn>& corpus_columns,
                                             const std::vector<shards::LabelColumn>& columns) {
  std::vector<shards::LabelValue> labels = e.labels;
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
  j["repaired"] = left_out_json(repaired);
  j["encode"] = Json{{"notes_in", encode.notes_in},
                     {"notes_encoded", encode.notes_encoded},
                     {"pitch_out_of_range", encode.pitch_out_of_range},
                     {"drums_out_of_range", encode.drums_out_of_range},
                     {"drums_dropped", encode.drums_dropped},
                     {"durations_clipped", encode.durations_clipped},
                     {"time_signatures_replaced", encode.time_signatures_replaced},
                     {"bars", encode.bars},
                     {"tokens", encode.tokens}};
  j["elapsed_s"] = elapsed_s;
  return j.dump(2) + "\n";
}

PrepareReport run_prepare(const PrepareConfig& config) {
  const auto start = std::chrono::steady_clock::now();
  const Corpus corpus = load_corpus(config.corpus, config.split);
  require_no_problems(corpus);
  if (const std::string empty = emptiness(corpus, config.corpus); !empty.empty()) throw DataError(empty);
  const tokenizer::Tokenizer tok(config.tokenizer);
  const std::string out_dir = config.output.dir.str();
  files::ensure_dir(out_dir);
  std::vector<std::string> artifacts{kTokenizerFile, kReportFile};
  for (const std::string& s : corpus.split_names) artifacts.push_back(shards::shard_file_name(s));
  remove_stale_temporaries(out_dir, artifacts);

  PrepareReport report;
  report.run_id = new_run_id();
  report.output_dir = out_dir;
  report.tokenizer_sha256 = tok.sha256();
  report.vocab_size = tok.vocab_size();
  PrepareConfig resolved = config;
  report.config_yaml = config::to_yaml(resolved);
  report.files = static_cast<int64_t>(corpus.entries.size());
  const size_t n = corpus.entries.size();
  const int threads = detail::worker_count(config.num_workers, n);
  const size_t window = static_cast<size_t>(threads) * 16;
  spdlog::info("prepare: {} files under {}, {} worker(s), tokenizer vocab {}", n, corpus.root, threads, tok.vocab_size());

  // Pass 1: content hashes, to drop identical files before any parsing.
  std::vector<Hashed> hashed(n);
  {
    Progress progress("hashing", static_cast<int64_t>(n), "files");
    detail::ordered_parallel<Hashed>(
        n, threads, window,
        [&](size_t i) {
          Hashed h;
          try {
            h.sha256 = hash::sha256_file(corpus.entries[i].path);
          } catch (const DataError& e) {
            h.error = e.what();
          }
          return h;
        },
        [&](size_t i, Hashed&& h) {
          hashed[i] = std::move(h);
          progress.advance();
        });
    progress.finish();
  }
  // Which copy of identical files to keep: the one in the latest split of
  // split.names (test before validation before train, so evaluation sets
  // stay intact), then the first path.
  std::vector<bool> keep(n, true);
  if (config.on_duplicate == "drop") {
    auto rank = [&](const std::string& split) {
      return std::find(corpus.split_names.begin(), corpus.split_names.end(), split) - corpus.split_names.begin();
    };
    std::map<std::string, size_t> kept;  // sha -> entry
    for (size_t i = 0; i < n; ++i) {
      if (!hashed[i].error.empty()) continue;
      auto [it, inserted] = kept.emplace(hashed[i].sha256, i);
      if (!inserted && rank(corpus.entries[i].split) > rank(corpus.entries[it->second].split)) it->second = i;
    }
    for (size_t i = 0; i < n; ++i) {
      if (!hashed[i].error.empty()) continue;
      const size_t k = kept[hashed[i].sha256];
      if (k == i) continue;
      keep[i] = false;
      const CorpusEntry& e = corpus.entries[i];
      report.duplicates.push_back(LeftOutFile{e.relative, e.split,
                                              "identical to " + corpus.entries[k].relative + " (" +
                                                  corpus.entries[k].split + ")"});
    }
  }

  std::map<std::string, std::unique_ptr<shards::ShardWriter>> writers;
  shards::ShardWriterOptions options;
  options.chunk_elements = config.output.chunk_elements;
  options.deflate_level = config.output.deflate_level;
  options.run_id = report.run_id;
  const shards::ShardVocab vocab{tok.vocab_size(), tok.pad_id(), tok.sha256()};
  const std::vector<shards::LabelColumn> label_columns = shard_label_columns(corpus);
  for (const std::string& s : corpus.split_names) {
    writers[s] = std::make_unique<shards::ShardWriter>((fs::path(out_dir) / shards::shard_file_name(s)).string(), s,
                                                       vocab, label_columns, options);
    report.splits.push_back(SplitSummary{s, writers[s]->path()});
  }

  // Pass 2: parse and tokenize in parallel, write in corpus order.
  std::vector<size_t> todo;
  for (size_t i = 0; i < n; ++i) {
    if (keep[i]) todo.push_back(i);
  }
  const midi::ReadOptions read_options = config.reader.options();
  Progress progress("prepare", static_cast<int64_t>(todo.size()), "files");
  detail::ordered_parallel<Processed>(
      todo.size(), threads, window,
      [&](size_t k) {
        const CorpusEntry& e = corpus.entries[todo[k]];
        Processed p;
        if (!hashed[todo[k]].error.empty()) {
          p.status = Processed::Status::kFailed;
          p.reason = hashed[todo[k]].error;
          return p;
        }
        try {
          const std::string bytes = files::read_all(e.path);
          const midi::Score score = midi::read_midi_bytes(bytes, e.path, read_options);
          p.repairs = score.stats.repairs;
          if (!score.stats.warnings.empty()) p.first_warning = score.stats.warnings.front();
          try {
            tok.encode(score, p.tokens, &p.stats);
          } catch (const DataError& err) {
            throw DataError(e.path + ": " + err.what());
          }
          p.notes = p.stats.notes_encoded;
          p.seconds = score.duration_seconds();
          if (p.notes < config.min_notes) {
            p.status = Processed::Status::kTooShort;
            p.reason = std::to_string(p.notes) + " note(s) the tokenizer keeps (of " + std::to_string(p.stats.notes_in) +
                       "), fewer than min_notes " + std::to_string(config.min_notes);
            p.tokens.clear();
          }
        } catch (const DataError& err) {
          p.status = Processed::Status::kFailed;
          p.reason = err.what();
          p.tokens.clear();
        }
        return p;
      },
      [&](size_t k, Processed&& p) {
        const CorpusEntry& e = corpus.entries[todo[k]];
        progress.advance();
        if (p.repairs > 0) report.repaired.push_back(LeftOutFile{e.relative, e.split, p.first_warning});
        if (p.status == Processed::Status::kFailed) {
          if (config.on_error == "fail") {
            throw DataError(p.reason + " (on_error: fail; set on_error: skip to leave such files out and list them)");
          }
          spdlog::warn("prepare: skipping {}: {}", e.relative, p.reason);
          report.failed.push_back(LeftOutFile{e.relative, e.split, p.reason});
          return;
        }
        if (p.status == Processed::Status::kTooShort) {
          report.too_short.push_back(LeftOutFile{e.relative, e.split, p.reason});
          return;
        }
        report.encode.add(p.stats);
        shards::ShardItem item;
        item.source = e.relative;
        item.song_id = e.song_id;
        item.sha256 = hashed[todo[k]].sha256;
        item.num_notes = p.notes;
        item.duration_s = p.seconds;
        item.labels = shard_labels(e, corpus.label_columns, label_columns);
        writers.at(e.split)->add(p.tokens.data(), p.tokens.size(), item);
        for (SplitSummary& s : report.splits) {
          if (s.name != e.split) continue;
          ++s.items;
          s.tokens += static_cast<int64_t>(p.tokens.size());
          s.notes += p.notes;
          s.seconds += p.seconds;
        }
      });
  progress.finish();
  require_items_in_every_split(report);

  // Commit: shards first, then the tokenizer they name, then the report.
  for (auto& [name, writer] : writers) writer->commit();
  tok.save((fs::path(out_dir) / kTokenizerFile).string());
  report.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  files::write_atomic((fs::path(out_dir) / kReportFile).string(), report.to_json());
  for (const SplitSummary& s : report.splits) {
    spdlog::info("prepare: {} {} items, {} tokens -> {}", s.name, s.items, s.tokens, s.shard);
  }
  return report;
}

}  // namespace kmidi::corpus
