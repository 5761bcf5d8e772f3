// kmidi prepare at scale: byte-identical output whatever the thread count,
// segment size and buffer, resuming a killed prepare, deduplication against
// another prepared folder, the bounded in-flight buffer, and config errors.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "core/Config.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "datasets/corpus/Corpus.h"
#include "datasets/corpus/Prepare.h"
#include "datasets/corpus/detail/OrderedPool.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/shards/ShardReader.h"
#include "tests/support/TestSupport.h"

namespace kmidi::corpus {
namespace {

namespace fs = std::filesystem;

const std::string kSampleConfig = std::string(KMIDI_SOURCE_DIR) + "/configs/prepare_pop909_sample.yaml";
const char* const kArtifacts[] = {"train.h5", "validation.h5", "test.h5", "tokenizer.json"};

/// The 40 POP909 sample files copied to `dir` (tests may change the copies).
fs::path copy_sample(const fs::path& dir) {
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(std::string(KMIDI_SOURCE_DIR) + "/data/pop909-sample")) {
    if (e.path().extension() == ".mid") fs::copy_file(e.path(), dir / e.path().filename());
  }
  return dir;
}

PrepareConfig sample_config(const fs::path& corpus, const fs::path& out, std::vector<std::string> overrides = {}) {
  overrides.push_back("corpus.root=" + corpus.string());
  overrides.push_back("output.dir=" + out.string());
  return load_prepare_config(kSampleConfig, overrides);
}

/// The report with what may differ between equivalent runs taken out: the
/// output folder, timings, resume counts and the thread count.
std::string comparable_report(const fs::path& out) {
  std::string text = files::read_all((out / "prepare_report.json").string());
  std::string::size_type at;
  while ((at = text.find(out.string())) != std::string::npos) text.replace(at, out.string().size(), "<out>");
  for (const char* pattern : {"\"elapsed_s\": [0-9.e+-]+", "\"files_resumed\": [0-9]+", "\"files_parsed\": [0-9]+",
                              "num_workers: [0-9]+", "segment_files: [0-9]+", "max_buffer_mb: [0-9]+"}) {
    text = std::regex_replace(text, std::regex(pattern), "");
  }
  return text;
}

void expect_same_outputs(const fs::path& a, const fs::path& b) {
  for (const char* name : kArtifacts) {
    EXPECT_EQ(files::read_all((a / name).string()), files::read_all((b / name).string())) << name << " differs";
  }
  EXPECT_EQ(comparable_report(a), comparable_report(b));
}

TEST(PrepareScale, OutputIsByteIdenticalWhateverThreadsSegmentsAndBuffer) {
  const fs::path dir = test::scratch_dir("prepare_threads");
  const fs::path corpus = std::string(KMIDI_SOURCE_DIR) + "/data/pop909-sample";
  const PrepareReport one = run_prepare(sample_config(corpus, dir / "one", {"num_workers=1", "output.run_id=fixed"}));
  EXPECT_EQ(one.files_parsed, 40);
  // Many small segments, a buffer smaller than one file, three threads on two cores.
  run_prepare(sample_config(corpus, dir / "three",
                            {"num_workers=3", "output.run_id=fixed", "output.segment_files=3", "output.max_buffer_mb=1"}));
  expect_same_outputs(dir / "one", dir / "three");
  EXPECT_EQ(shards::ShardReader((dir / "three/train.h5").string()).run_id(), "fixed");
  EXPECT_FALSE(fs::exists(dir / "three/.prepare-work"));  // removed once committed
}

int run_kmidi(const std::string& args, const std::string& env) {
  const std::string cmd = env + " " + KMIDI_BINARY_DIR + "/kmidi " + args + " >/dev/null 2>&1";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(PrepareScale, KilledPrepareResumesAfterItsFinishedSegments) {
  const fs::path dir = test::scratch_dir("prepare_resume");
  const fs::path corpus = copy_sample(dir / "corpus");
  const std::vector<std::string> settings{"output.segment_files=7", "output.run_id=resume"};
  run_prepare(sample_config(corpus, dir / "reference", settings));

  // Killed (SIGKILL, as an OOM kill would) right after its third segment (files 0..20).
  const fs::path out = dir / "out";
  std::string args = "prepare --config " + kSampleConfig + " corpus.root=" + corpus.string() + " output.dir=" + out.string();
  for (const std::string& s : settings) args += " " + s;
  ASSERT_EQ(run_kmidi(args, "KMIDI_FAULT=prepare_segment:segment-000002.bin"), 128 + SIGKILL);
  for (const char* name : kArtifacts) EXPECT_FALSE(fs::exists(out / name)) << name;  // nothing committed
  for (int s = 0; s < 3; ++s) EXPECT_TRUE(fs::exists(out / (".prepare-work/segment-00000" + std::to_string(s) + ".bin")));
  EXPECT_FALSE(fs::exists(out / ".prepare-work/segment-000003.bin"));

  // A file of the first segment changed since: that segment is redone, the
  // next two are kept. Segments follow the writer's order, which starts with
  // the last split's files (test), by path.
  const Corpus listed = load_corpus(sample_config(corpus, out).corpus, sample_config(corpus, out).split);
  size_t first = 0;
  while (first < listed.size() && listed.split(first) != "test") ++first;
  ASSERT_LT(first, listed.size());
  const fs::path changed = listed.path(first);
  fs::last_write_time(changed, fs::last_write_time(changed) + std::chrono::hours(1));
  const PrepareReport resumed = run_prepare(sample_config(corpus, out, settings));
  EXPECT_EQ(resumed.files_resumed, 14);
  EXPECT_EQ(resumed.files_parsed, 26);
  EXPECT_EQ(resumed.run_id, "resume");
  expect_same_outputs(dir / "reference", out);
  EXPECT_FALSE(fs::exists(out / ".prepare-work"));
}

/// `bytes` with one more track holding only a track name: other bytes, the same music.
std::string with_name_track(std::string bytes) {
  const int tracks = (static_cast<uint8_t>(bytes[10]) << 8 | static_cast<uint8_t>(bytes[11])) + 1;
  bytes[10] = static_cast<char>(tracks >> 8);
  bytes[11] = static_cast<char>(tracks & 0xFF);
  const std::string events("\x00\xFF\x03\x04name\x00\xFF\x2F\x00", 12);
  return bytes + "MTrk" + std::string("\x00\x00\x00", 3) + static_cast<char>(events.size()) + events;
}

/// Where `sha256` (of a file's bytes) is stored in the shards of `dir`: "<dir>/<split>.h5:<source>".
std::string stored_as(const fs::path& dir, const std::string& sha256) {
  for (const char* split : {"train", "validation", "test"}) {
    const std::string path = (dir / (std::string(split) + ".h5")).string();
    const shards::ShardReader shard(path);
    for (int64_t i = 0; i < shard.size(); ++i) {
      if (shard.item(i).sha256 == sha256) return path + ":" + shard.item(i).source;
    }
  }
  return "";
}

TEST(PrepareScale, DedupAgainstAnotherPreparedFolderCountsASongOnce) {
  const fs::path dir = test::scratch_dir("prepare_dedup");
  const fs::path sample = std::string(KMIDI_SOURCE_DIR) + "/data/pop909-sample";
  const fs::path first = dir / "first";
  run_prepare(sample_config(sample, first));

  // A second corpus: two files of the first, one of them re-saved with a
  // name track, four songs of its own of which one twice.
  const fs::path second = dir / "second";
  fs::create_directories(second);
  fs::copy_file(sample / "005.mid", second / "a_copy.mid");
  fs::copy_file(sample / "017.mid", second / "b_copy.mid");
  const std::string original = files::read_all((sample / "023.mid").string());
  files::write_atomic((second / "c_renamed.mid").string(), with_name_track(original));
  for (const char* song : {"800", "801", "802", "803"}) {
    fs::copy_file(test::shared_data("pop909/POP909/" + std::string(song) + "/" + song + ".mid"),
                  second / ("own_" + std::string(song) + ".mid"));
  }
  fs::copy_file(second / "own_801.mid", second / "own_801_again.mid");
  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::load((first / "tokenizer.json").string());
  ASSERT_NE(files::read_all((second / "c_renamed.mid").string()), original);
  ASSERT_EQ(tok.encode(midi::read_midi_file((second / "c_renamed.mid").string())),
            tok.encode(midi::read_midi_file((sample / "023.mid").string())));

  auto prepare_second = [&](const std::string& key) {
    return run_prepare(sample_config(second, dir / ("second_" + key),
                                     {"split.names=[train]", "split.ratios=[1.0]", "dedup_key=" + key,
                                      "dedup_against=[" + first.string() + "]"}));
  };
  const PrepareReport by_file = prepare_second("file");
  ASSERT_EQ(by_file.duplicates_elsewhere.size(), 2u);
  EXPECT_EQ(by_file.duplicates_elsewhere[0].path, "a_copy.mid");
  EXPECT_EQ(by_file.duplicates_elsewhere[0].kept_as, stored_as(first, hash::sha256_file((sample / "005.mid").string())));
  EXPECT_NE(by_file.duplicates_elsewhere[0].kept_as.find(":005.mid"), std::string::npos);
  EXPECT_EQ(by_file.duplicates_elsewhere[1].path, "b_copy.mid");
  EXPECT_EQ(by_file.duplicates_elsewhere[1].kind, "duplicate_elsewhere");
  ASSERT_EQ(by_file.duplicates.size(), 1u);
  EXPECT_EQ(by_file.duplicates[0].path, "own_801_again.mid");
  EXPECT_EQ(by_file.duplicates[0].kept_as, "own_801.mid (train)");
  EXPECT_EQ(by_file.splits.at(0).items, 5);  // c_renamed and the four own songs
  EXPECT_EQ(by_file.left_out_counts().at("duplicate_elsewhere"), 2);
  EXPECT_EQ(by_file.left_out_counts().at("duplicate"), 1);
  const std::string json = files::read_all((dir / "second_file/prepare_report.json").string());
  EXPECT_NE(json.find("\"kept_as\": \"" + by_file.duplicates_elsewhere[1].kept_as + "\""), std::string::npos);
  EXPECT_NE(json.find("\"duplicate_elsewhere\": 2"), std::string::npos);

  // By token ids, the renamed copy is the same song too.
  const PrepareReport by_tokens = prepare_second("tokens");
  ASSERT_EQ(by_tokens.duplicates_elsewhere.size(), 3u);
  EXPECT_EQ(by_tokens.duplicates_elsewhere[2].path, "c_renamed.mid");
  EXPECT_NE(by_tokens.duplicates_elsewhere[2].kept_as.find(":023.mid"), std::string::npos);
  EXPECT_EQ(by_tokens.splits.at(0).items, 4);
  const shards::ShardReader kept((dir / "second_tokens/train.h5").string());
  ASSERT_EQ(kept.size(), 4);
  EXPECT_EQ(kept.item(0).source, "own_800.mid");
}

/// Names "<stem>_<k>.mid" whose songs fall in `split`, `count` of them.
std::vector<std::string> names_in_split(const PrepareConfig& config, const std::string& stem, const std::string& split,
                                        size_t count) {
  std::vector<std::string> names;
  for (int k = 0; names.size() < count && k < 10000; ++k) {
    const std::string song = stem + "_" + std::to_string(k);
    if (hash_split(song, config.split) == split) names.push_back(song + ".mid");
  }
  std::sort(names.begin(), names.end());  // corpus order
  return names;
}

TEST(PrepareScale, DuplicatesKeepTheCopyInTheLatestSplitThenTheFirstPath) {
  const fs::path dir = test::scratch_dir("prepare_dup_splits");
  const fs::path corpus = copy_sample(dir / "corpus");
  const PrepareConfig config = sample_config(corpus, dir / "out");
  // One song saved under three train names and one test name: the test copy
  // is kept (evaluation sets stay intact), whatever the paths' order.
  const std::vector<std::string> train = names_in_split(config, "a", "train", 3);
  const std::vector<std::string> test = names_in_split(config, "z", "test", 1);
  ASSERT_EQ(train.size(), 3u);
  ASSERT_EQ(test.size(), 1u);
  const fs::path song = test::shared_data("pop909/POP909/800/800.mid");
  for (const std::string& name : train) fs::copy_file(song, corpus / name);
  fs::copy_file(song, corpus / test[0]);
  // And a song saved twice in train: the first path is kept.
  const std::vector<std::string> twice = names_in_split(config, "m", "train", 2);
  for (const std::string& name : twice) fs::copy_file(test::shared_data("pop909/POP909/801/801.mid"), corpus / name);

  const PrepareReport report = run_prepare(config);
  ASSERT_EQ(report.duplicates.size(), 4u);
  const std::string kept_test = test[0] + " (test)";
  for (size_t i = 0; i < 3; ++i) {  // listed in corpus order (by path)
    EXPECT_EQ(report.duplicates[i].path, train[i]);
    EXPECT_EQ(report.duplicates[i].split, "train");
    EXPECT_EQ(report.duplicates[i].kept_as, kept_test);
  }
  EXPECT_EQ(report.duplicates[3].path, twice[1]);
  EXPECT_EQ(report.duplicates[3].kept_as, twice[0] + " (train)");
  const std::string hash = hash::sha256_file(song.string());
  EXPECT_EQ(stored_as(dir / "out", hash), (dir / "out/test.h5").string() + ":" + test[0]);
  EXPECT_EQ(stored_as(dir / "out", hash::sha256_file((corpus / twice[0]).string())),
            (dir / "out/train.h5").string() + ":" + twice[0]);
}

TEST(PrepareScale, ErrorsNameTheirKeys) {
  const fs::path dir = test::scratch_dir("prepare_errors");
  const fs::path sample = std::string(KMIDI_SOURCE_DIR) + "/data/pop909-sample";
  auto config_error = [&](const std::string& override_text) -> std::string {
    try {
      sample_config(sample, dir / "out", {override_text});
    } catch (const config::ConfigError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(config_error("output.segment_files=0").find("segment_files"), std::string::npos);
  EXPECT_NE(config_error("output.max_buffer_mb=0").find("max_buffer_mb"), std::string::npos);
  EXPECT_NE(config_error("dedup_key=bytes").find("dedup_key"), std::string::npos);

  auto data_error = [&](const std::vector<std::string>& overrides) -> std::string {
    try {
      run_prepare(sample_config(sample, dir / "out", overrides));
    } catch (const DataError& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string missing = data_error({"dedup_against=[" + (dir / "nowhere").string() + "]"});
  EXPECT_EQ(missing.rfind("dedup_against[0]: " + (dir / "nowhere").string() + ": not a folder", 0), 0u) << missing;
  EXPECT_FALSE(fs::exists(dir / "out"));  // refused before anything was made

  run_prepare(sample_config(sample, dir / "other_tokenizer", {"tokenizer.velocity_bins=16"}));
  const std::string other = data_error({"dedup_key=tokens", "dedup_against=[" + (dir / "other_tokenizer").string() + "]"});
  EXPECT_NE(other.find("dedup_against[0]: "), std::string::npos) << other;
  EXPECT_NE(other.find("another tokenizer"), std::string::npos) << other;
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(PrepareScale, BufferBudgetBoundsTheFilesInFlight) {
  // 200 items of cost 10 under a budget of 35: at most 3 claimed and not yet
  // consumed, though the window (64) and the threads (4) would allow more.
  std::atomic<int> in_flight{0}, peak{0};
  std::vector<size_t> order;
  detail::ordered_parallel<size_t>(
      200, 4, 64,
      [&](size_t i) {
        const int now = ++in_flight;
        for (int seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        return i;
      },
      [&](size_t i, size_t&& r) {
        EXPECT_EQ(i, r);
        order.push_back(r);
        --in_flight;
      },
      [](size_t) { return size_t{10}; }, 35);
  EXPECT_EQ(order.size(), 200u);
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
  EXPECT_LE(peak.load(), 3);
  EXPECT_GE(peak.load(), 2);  // and it does run items side by side

  // An item dearer than the whole budget still runs, alone.
  peak = 0;
  order.clear();
  detail::ordered_parallel<size_t>(
      20, 4, 64,
      [&](size_t i) {
        const int now = ++in_flight;
        for (int seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
        }
        return i;
      },
      [&](size_t, size_t&& r) {
        order.push_back(r);
        --in_flight;
      },
      [](size_t) { return size_t{100}; }, 35);
  EXPECT_EQ(order.size(), 20u);
  EXPECT_EQ(peak.load(), 1);
}

}  // namespace
}  // namespace kmidi::corpus
