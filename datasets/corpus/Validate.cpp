#include "datasets/corpus/Validate.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <set>
#include <sstream>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "core/Progress.h"
#include "core/Strings.h"
#include "datasets/corpus/detail/OrderedPool.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/shards/ShardReader.h"

namespace fs = std::filesystem;

namespace kmidi::corpus {
namespace {

using Json = nlohmann::ordered_json;

struct Checked {
  enum class Status { kOk, kMissing, kFailed } status = Status::kOk;
  std::string reason;
  std::string sha256;
  int64_t notes = 0;
  bool silent = false;
  double seconds = 0.0;
  int64_t tokens = 0;
  std::string encode_error;
  tokenizer::EncodeStats stats;
  std::array<int32_t, 128> pitches{}, drums{};
  std::vector<std::string> time_signatures;
  int64_t repairs = 0;
  std::string first_warning;
};

Json issues_json(const std::vector<FileIssue>& issues) {
  Json list = Json::array();
  for (const FileIssue& i : issues) list.push_back(Json{{"path", i.path}, {"split", i.split}, {"reason", i.reason}});
  return list;
}

Json groups_json(const std::vector<DuplicateGroup>& groups) {
  Json list = Json::array();
  for (const DuplicateGroup& g : groups) {
    Json files = Json::array();
    for (const auto& [path, split] : g.files) files.push_back(Json{{"path", path}, {"split", split}});
    list.push_back(Json{{"sha256", g.sha256}, {"files", files}});
  }
  return list;
}

Json distribution_json(const Distribution& d) {
  return Json{{"count", d.count}, {"min", d.min}, {"mean", d.mean}, {"p50", d.p50}, {"p95", d.p95}, {"max", d.max}};
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

void check_shards(const PrepareConfig& config, const Corpus& corpus, const std::vector<Checked>& checked,
                  ValidationReport& report) {
  const std::string dir = config.output.dir.str();
  const std::string tokenizer_path = (fs::path(dir) / "tokenizer.json").string();
  std::vector<std::pair<std::string, std::string>> shard_files;  // (split, path)
  for (const std::string& s : corpus.split_names) {
    const std::string p = (fs::path(dir) / shards::shard_file_name(s)).string();
    if (fs::exists(p)) shard_files.emplace_back(s, p);
  }
  const bool have_tokenizer = fs::exists(tokenizer_path);
  report.shards_present = have_tokenizer || !shard_files.empty();
  if (!report.shards_present) return;
  auto problem = [&](const std::string& where, const std::string& split, const std::string& reason) {
    report.shard_problems.push_back(FileIssue{where, split, reason});
  };
  for (const std::string& s : corpus.split_names) {
    if (std::none_of(shard_files.begin(), shard_files.end(), [&](const auto& f) { return f.first == s; })) {
      problem((fs::path(dir) / shards::shard_file_name(s)).string(), s, "missing shard for split " + s);
    }
  }
  std::optional<tokenizer::Tokenizer> stored;
  if (!have_tokenizer) {
    problem(tokenizer_path, "", "missing: shards need the tokenizer.json that wrote them");
  } else {
    try {
      stored.emplace(tokenizer::Tokenizer::load(tokenizer_path));
      const tokenizer::Tokenizer configured(config.tokenizer);
      if (stored->sha256() != configured.sha256()) {
        problem(tokenizer_path, "", "differs from the config's tokenizer section (re-run kmidi prepare)");
      }
    } catch (const DataError& e) {
      problem(tokenizer_path, "", e.what());
    }
  }

  std::map<std::string, size_t> by_path;      // relative -> file
  std::map<std::string, std::string> sha_of;  // relative -> sha
  for (size_t i = 0; i < corpus.size(); ++i) {
    by_path[std::string(corpus.relative(i))] = i;
    sha_of[std::string(corpus.relative(i))] = checked[i].sha256;
  }
  std::map<std::string, std::set<std::string>> sha_splits, song_splits;
  std::map<std::string, std::string> sha_example;
  for (const auto& [split, path] : shard_files) {
    try {
      const shards::ShardReader shard(path);
      ShardCheck sc{split, path, shard.size(), shard.num_tokens(), 0};
      if (shard.split() != split) problem(path, split, "holds split '" + shard.split() + "', not " + split);
      if (stored && shard.tokenizer_sha256() != stored->sha256()) {
        problem(path, split, "was written with a different tokenizer than " + tokenizer_path + " (re-run kmidi prepare)");
      }
      const int64_t vocab = stored ? stored->vocab_size() : shard.vocab_size();
      if (shard.vocab_size() != vocab) {
        problem(path, split, "vocab_size " + std::to_string(shard.vocab_size()) + " but tokenizer.json has " +
                                 std::to_string(vocab));
      }
      // Scan every token id, in large blocks.
      constexpr int64_t kBlock = int64_t{1} << 20;
      std::vector<int32_t> buffer(static_cast<size_t>(std::min(kBlock, std::max<int64_t>(shard.num_tokens(), 1))));
      int64_t item = 0;
      for (int64_t first = 0; first < shard.num_tokens(); first += kBlock) {
        const int64_t count = std::min(kBlock, shard.num_tokens() - first);
        shard.read_flat(first, count, buffer.data());
        for (int64_t k = 0; k < count; ++k) {
          const int32_t id = buffer[static_cast<size_t>(k)];
          if (id >= 0 && id < vocab) continue;
          while (item + 1 < shard.size() && shard.offset(item + 1) <= first + k) ++item;
          if (sc.out_of_range < 5) {
            problem(path, split, "token id " + std::to_string(id) + " outside [0, " + std::to_string(vocab) +
                                     ") at position " + std::to_string(first + k - shard.offset(item)) + " of '" +
                                     shard.item(item).source + "'");
          }
          ++sc.out_of_range;
        }
      }
      report.out_of_range_tokens += sc.out_of_range;
      for (int64_t i = 0; i < shard.size(); ++i) {
        const shards::ShardItem& it = shard.item(i);
        sha_splits[it.sha256].insert(split);
        sha_example[it.sha256] = it.source;
        song_splits[it.song_id].insert(split);
        const auto found = by_path.find(it.source);
        if (found == by_path.end()) {
          problem(path, split, "item '" + it.source + "' is not in the corpus (stale shard; re-run kmidi prepare)");
        } else if (!sha_of[it.source].empty() && sha_of[it.source] != it.sha256) {
          problem(path, split, "item '" + it.source + "' changed since it was prepared (re-run kmidi prepare)");
        } else if (corpus.split(found->second) != split) {
          problem(path, split, "item '" + it.source + "' belongs to split '" + corpus.split(found->second) + "'");
        }
      }
      report.shards.push_back(sc);
    } catch (const DataError& e) {
      problem(path, split, e.what());
    }
  }
  for (const auto& [sha, splits] : sha_splits) {
    if (splits.size() > 1) {
      problem(dir, "", "content of '" + sha_example[sha] + "' is in shards of " +
                           strings::join(std::vector<std::string>(splits.begin(), splits.end()), " and "));
    }
  }
  for (const auto& [song, splits] : song_splits) {
    if (splits.size() > 1) {
      problem(dir, "", "song '" + song + "' is in shards of " +
                           strings::join(std::vector<std::string>(splits.begin(), splits.end()), " and "));
    }
  }
}

void apply_thresholds(const ValidateThresholds& t, ValidationReport& r) {
  auto limit = [&](const char* what, int64_t count, int64_t max, const char* key) {
    if (max >= 0 && count > max) {
      r.violations.push_back(std::string(what) + ": " + std::to_string(count) + " > " + key + " " + std::to_string(max));
    }
  };
  auto kind_count = [&](std::initializer_list<const char*> kinds) {
    int64_t n = 0;
    for (const CorpusProblem& p : r.corpus_problems) {
      for (const char* k : kinds) n += p.kind == k;
    }
    return n;
  };
  limit("parse failures", static_cast<int64_t>(r.parse_failures.size()), t.max_parse_failures, "max_parse_failures");
  limit("missing files", static_cast<int64_t>(r.missing.size()), t.max_missing_files, "max_missing_files");
  limit("empty files", static_cast<int64_t>(r.empty.size()), t.max_empty_files, "max_empty_files");
  limit("silent files", static_cast<int64_t>(r.silent.size()), t.max_silent_files, "max_silent_files");
  limit("encode failures", static_cast<int64_t>(r.encode_failures.size()), t.max_encode_failures, "max_encode_failures");
  limit("label and manifest problems", kind_count({"manifest", "label"}), t.max_label_problems, "max_label_problems");
  limit("split problems", kind_count({"split", "song_id"}), t.max_split_problems, "max_split_problems");
  limit("songs in more than one split", kind_count({"song_leak"}), t.max_song_leaks, "max_song_leaks");
  limit("duplicate copies within splits", r.duplicate_copies_within_split, t.max_duplicates_within_split,
        "max_duplicates_within_split");
  limit("contents in more than one split", static_cast<int64_t>(r.duplicates_across_splits.size()),
        t.max_duplicates_across_splits, "max_duplicates_across_splits");
  limit("shard problems", static_cast<int64_t>(r.shard_problems.size()), t.max_shard_problems, "max_shard_problems");
  limit("out-of-range token ids", r.out_of_range_tokens, t.max_out_of_range_tokens, "max_out_of_range_tokens");
}

/// Data that cannot train anything never passes, whatever the thresholds: an
/// empty corpus, a split without files, a shard without items.
void require_data(const Corpus& corpus, const CorpusConfig& config, ValidationReport& r) {
  if (const std::string empty = emptiness(corpus, config); !empty.empty()) r.violations.push_back(empty);
  for (const ShardCheck& s : r.shards) {
    if (s.items == 0) r.violations.push_back("shard " + s.path + " (split " + s.split + ") holds no items");
  }
}

}  // namespace

Distribution Distribution::of(std::vector<double> v) {
  Distribution d;
  d.count = static_cast<int64_t>(v.size());
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  d.min = v.front();
  d.max = v.back();
  d.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  d.p50 = v[(v.size() - 1) / 2];
  d.p95 = v[static_cast<size_t>(0.95 * static_cast<double>(v.size() - 1))];
  return d;
}

ValidationReport run_validate(const PrepareConfig& config, const std::string& config_path) {
  ValidationReport report;
  report.config_path = config_path;
  const Corpus corpus = load_corpus(config.corpus, config.split);
  report.corpus_root = corpus.root;
  report.files = static_cast<int64_t>(corpus.size());
  report.corpus_problems = corpus.problems;
  report.unlisted = corpus.unlisted;
  for (const std::string& s : corpus.split_names) report.files_per_split[s] = 0;
  for (size_t i = 0; i < corpus.size(); ++i) ++report.files_per_split[corpus.split(i).empty() ? "(none)" : corpus.split(i)];

  const tokenizer::Tokenizer tok(config.tokenizer);
  const midi::ReadOptions read_options = config.reader.options();
  const size_t n = corpus.size();
  const int threads = detail::worker_count(config.num_workers, n);
  std::vector<Checked> checked(n);
  std::vector<double> notes, tokens, seconds;
  {
    Progress progress("validate", static_cast<int64_t>(n), "files");
    detail::ordered_parallel<Checked>(
        n, threads, static_cast<size_t>(threads) * 16,
        [&](size_t i) {
          const CorpusEntry e = corpus.entry(i);
          Checked c;
          if (!e.exists) {
            c.status = Checked::Status::kMissing;
            c.reason = e.origin.empty() ? "no such file" : "no such file (listed at " + e.origin + ")";
            return c;
          }
          try {
            const std::string bytes = files::read_all(e.path);
            c.sha256 = hash::sha256_hex(bytes);
            const midi::Score score = midi::read_midi_bytes(bytes, e.path, read_options);
            c.repairs = score.stats.repairs;
            if (!score.stats.warnings.empty()) c.first_warning = score.stats.warnings.front();
            c.notes = static_cast<int64_t>(score.notes.size());
            c.silent = c.notes > 0 && std::all_of(score.notes.begin(), score.notes.end(),
                                                  [](const midi::Note& x) { return x.end_tick <= x.start_tick; });
            c.seconds = score.duration_seconds();
            for (const midi::Note& x : score.notes) ++(x.is_drum() ? c.drums : c.pitches)[static_cast<size_t>(x.pitch & 127)];
            for (const midi::TimeSignature& ts : score.time_signatures) {
              c.time_signatures.push_back(std::to_string(ts.numerator) + "/" + std::to_string(ts.denominator));
            }
            try {
              std::vector<int32_t> ids;
              tok.encode(score, ids, &c.stats);
              c.tokens = static_cast<int64_t>(ids.size());
            } catch (const DataError& err) {
              c.encode_error = err.what();
            }
          } catch (const DataError& err) {
            c.status = Checked::Status::kFailed;
            c.reason = err.what();
          }
          return c;
        },
        [&](size_t i, Checked&& c) {
          const CorpusEntry e = corpus.entry(i);
          progress.advance();
          if (c.status == Checked::Status::kMissing) {
            report.missing.push_back(FileIssue{e.relative, e.split, c.reason});
          } else if (c.status == Checked::Status::kFailed) {
            report.parse_failures.push_back(FileIssue{e.relative, e.split, c.reason});
          } else {
            ++report.parsed;
            if (c.repairs > 0) report.repaired.push_back(FileIssue{e.relative, e.split, c.first_warning});
            if (c.notes == 0) report.empty.push_back(FileIssue{e.relative, e.split, "no notes"});
            if (c.silent) report.silent.push_back(FileIssue{e.relative, e.split, "every note has zero length"});
            if (!c.encode_error.empty()) {
              report.encode_failures.push_back(FileIssue{e.relative, e.split, c.encode_error});
            } else {
              report.encode.add(c.stats);
              tokens.push_back(static_cast<double>(c.tokens));
            }
            notes.push_back(static_cast<double>(c.notes));
            seconds.push_back(c.seconds);
            for (size_t p = 0; p < 128; ++p) {
              report.pitch_histogram[p] += c.pitches[p];
              report.drum_histogram[p] += c.drums[p];
            }
            std::set<std::string> unique(c.time_signatures.begin(), c.time_signatures.end());
            for (const std::string& ts : unique) ++report.time_signatures[ts];
          }
          c.pitches = {};
          c.drums = {};
          checked[i] = std::move(c);
        });
    progress.finish();
  }
  report.notes = Distribution::of(std::move(notes));
  report.tokens = Distribution::of(std::move(tokens));
  report.seconds = Distribution::of(std::move(seconds));

  // Identical files, within and across splits.
  std::map<std::string, std::vector<size_t>> by_sha;
  for (size_t i = 0; i < n; ++i) {
    if (!checked[i].sha256.empty()) by_sha[checked[i].sha256].push_back(i);
  }
  for (const auto& [sha, members] : by_sha) {
    if (members.size() < 2) continue;
    std::map<std::string, std::vector<size_t>> per_split;
    for (size_t i : members) per_split[corpus.split(i)].push_back(i);
    DuplicateGroup g{sha, {}};
    for (size_t i : members) g.files.emplace_back(std::string(corpus.relative(i)), corpus.split(i));
    if (per_split.size() > 1) report.duplicates_across_splits.push_back(g);
    bool within = false;
    for (const auto& [split, files] : per_split) {
      if (files.size() > 1) {
        report.duplicate_copies_within_split += static_cast<int64_t>(files.size()) - 1;
        within = true;
      }
    }
    if (within) report.duplicates_within_split.push_back(g);
  }

  check_shards(config, corpus, checked, report);
  apply_thresholds(config.validate, report);
  require_data(corpus, config.corpus, report);
  return report;
}

std::string ValidationReport::to_json() const {
  Json j = Json::object();
  j["config"] = config_path;
  j["corpus_root"] = corpus_root;
  j["passed"] = passed();
  j["violations"] = violations;
  j["files"] = files;
  j["parsed"] = parsed;
  j["files_per_split"] = files_per_split;
  Json problems = Json::array();
  for (const CorpusProblem& p : corpus_problems) {
    problems.push_back(Json{{"kind", p.kind}, {"where", p.where}, {"message", p.message}});
  }
  j["corpus_problems"] = problems;
  j["unlisted_files"] = unlisted;
  j["missing_files"] = issues_json(missing);
  j["parse_failures"] = issues_json(parse_failures);
  j["empty_files"] = issues_json(empty);
  j["silent_files"] = issues_json(silent);
  j["encode_failures"] = issues_json(encode_failures);
  j["repaired_files"] = issues_json(repaired);
  j["duplicates"] = Json{{"copies_within_splits", duplicate_copies_within_split},
                         {"within_splits", groups_json(duplicates_within_split)},
                         {"across_splits", groups_json(duplicates_across_splits)}};
  int lowest = -1, highest = -1;
  for (int p = 0; p < 128; ++p) {
    if (pitch_histogram[static_cast<size_t>(p)] == 0) continue;
    if (lowest < 0) lowest = p;
    highest = p;
  }
  j["statistics"] = Json{{"notes_per_file", distribution_json(notes)},
                         {"tokens_per_file", distribution_json(tokens)},
                         {"seconds_per_file", distribution_json(seconds)},
                         {"pitch_min", lowest},
                         {"pitch_max", highest},
                         {"pitch_histogram", pitch_histogram},
                         {"drum_histogram", drum_histogram},
                         {"time_signatures", time_signatures}};
  j["tokenizer"] = Json{{"notes_in", encode.notes_in},
                        {"notes_encoded", encode.notes_encoded},
                        {"pitch_out_of_range", encode.pitch_out_of_range},
                        {"drums_out_of_range", encode.drums_out_of_range},
                        {"drums_dropped", encode.drums_dropped},
                        {"durations_clipped", encode.durations_clipped},
                        {"time_signatures_replaced", encode.time_signatures_replaced}};
  Json shard_list = Json::array();
  for (const ShardCheck& s : shards) {
    shard_list.push_back(Json{{"split", s.split}, {"path", s.path}, {"items", s.items}, {"tokens", s.tokens},
                              {"out_of_range_tokens", s.out_of_range}});
  }
  j["shards"] = Json{{"present", shards_present},
                     {"checked", shard_list},
                     {"out_of_range_tokens", out_of_range_tokens},
                     {"problems", issues_json(shard_problems)}};
  return j.dump(2) + "\n";
}

std::string ValidationReport::summary() const {
  std::ostringstream os;
  std::vector<std::string> per_split;
  for (const auto& [s, count] : files_per_split) per_split.push_back(s + " " + std::to_string(count));
  auto count_kind = [&](std::initializer_list<const char*> kinds) {
    int64_t k = 0;
    for (const CorpusProblem& p : corpus_problems) {
      for (const char* x : kinds) k += p.kind == x;
    }
    return k;
  };
  os << "kmidi validate: " << config_path << "\n";
  os << "  corpus: " << corpus_root << ": " << files << " files (" << strings::join(per_split, ", ") << "), "
     << parsed << " parsed\n";
  os << "  parse failures " << parse_failures.size() << ", missing " << missing.size() << ", empty " << empty.size()
     << ", silent " << silent.size() << ", not tokenizable " << encode_failures.size() << ", repaired "
     << repaired.size() << "\n";
  os << "  manifest/label problems " << count_kind({"manifest", "label"}) << ", split problems "
     << count_kind({"split", "song_id"}) << ", songs in several splits " << count_kind({"song_leak"})
     << ", unlisted files " << unlisted.size() << "\n";
  os << "  identical files: " << duplicate_copies_within_split << " extra copies within splits, "
     << duplicates_across_splits.size() << " contents across splits\n";
  os << "  notes/file " << number(notes.min) << ".." << number(notes.p50) << ".." << number(notes.max)
     << " (min..median..max), tokens/file " << number(tokens.min) << ".." << number(tokens.p50) << ".."
     << number(tokens.max) << ", seconds/file " << number(seconds.min) << ".." << number(seconds.p50) << ".."
     << number(seconds.max) << "\n";
  if (shards_present) {
    int64_t items = 0;
    for (const ShardCheck& s : shards) items += s.items;
    os << "  shards: " << shards.size() << " read, " << items << " items, " << out_of_range_tokens
       << " out-of-range token ids, " << shard_problems.size() << " problems\n";
  } else {
    os << "  shards: none prepared yet\n";
  }
  auto first = [&](const char* label, const std::vector<FileIssue>& v) {
    for (size_t i = 0; i < std::min<size_t>(v.size(), 3); ++i) os << "    " << label << ": " << v[i].path << ": " << v[i].reason << "\n";
  };
  first("parse failure", parse_failures);
  first("missing", missing);
  first("empty", empty);
  first("shard", shard_problems);
  for (size_t i = 0; i < std::min<size_t>(corpus_problems.size(), 3); ++i) {
    os << "    " << corpus_problems[i].kind << ": " << corpus_problems[i].where << ": " << corpus_problems[i].message << "\n";
  }
  for (size_t i = 0; i < std::min<size_t>(duplicates_across_splits.size(), 3); ++i) {
    std::vector<std::string> names;
    for (const auto& [p, s] : duplicates_across_splits[i].files) names.push_back(p + " (" + s + ")");
    os << "    identical across splits: " << strings::join(names, ", ") << "\n";
  }
  os << (passed() ? "  PASSED\n" : "  FAILED: " + strings::join(violations, "; ") + "\n");
  return os.str();
}

}  // namespace kmidi::corpus
