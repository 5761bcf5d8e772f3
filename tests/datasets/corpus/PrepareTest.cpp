// kmidi prepare on real corpora: the POP909 sample (all 40 songs), EMOPIA and
// Groove with their official splits, the corrupted files of the shared data
// under on_error skip, determinism, and interrupted runs.

#include "datasets/corpus/Prepare.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "datasets/corpus/Validate.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/shards/ShardReader.h"
#include "tests/support/TestSupport.h"

namespace kmidi::corpus {
namespace {

namespace fs = std::filesystem;

std::string repo(const std::string& relative) { return std::string(KMIDI_SOURCE_DIR) + "/" + relative; }

PrepareConfig repo_config(const std::string& name, const fs::path& out, std::vector<std::string> overrides = {}) {
  overrides.push_back("output.dir=" + out.string());
  return load_prepare_config(repo("configs/" + name), overrides);
}

std::map<std::string, shards::ShardReader> open_shards(const fs::path& dir) {
  std::map<std::string, shards::ShardReader> out;
  for (const char* s : {"train", "validation", "test"}) out.emplace(s, shards::ShardReader((dir / (std::string(s) + ".h5")).string()));
  return out;
}

TEST(Prepare, Pop909SampleAllSongs) {
  const fs::path out = fs::path(test::scratch_dir("pop909_sample"));
  const PrepareConfig config = repo_config("prepare_pop909_sample.yaml", out);
  const PrepareReport report = run_prepare(config);
  EXPECT_EQ(report.files, 40);
  EXPECT_TRUE(report.failed.empty());
  EXPECT_TRUE(report.duplicates.empty());
  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::load((out / "tokenizer.json").string());
  EXPECT_EQ(tok.sha256(), report.tokenizer_sha256);
  auto shards = open_shards(out);
  int64_t items = 0;
  for (auto& [split, shard] : shards) {
    EXPECT_EQ(shard.split(), split);
    EXPECT_EQ(shard.tokenizer_sha256(), tok.sha256());
    EXPECT_EQ(shard.run_id(), report.run_id);
    EXPECT_EQ(shard.token_bits(), 16);
    for (int64_t i = 0; i < shard.size(); ++i) {
      const shards::ShardItem& it = shard.item(i);
      SCOPED_TRACE(it.source);
      const std::string path = repo("data/pop909-sample/" + it.source);
      // The split is the hash of the song (the file name), as documented.
      EXPECT_EQ(hash_split(it.source.substr(0, 3), config.split), split);
      EXPECT_EQ(it.song_id, it.source.substr(0, 3));
      EXPECT_EQ(it.sha256, hash::sha256_file(path));
      // Tokens are exactly what the tokenizer makes of the reader's score.
      const auto expected = tok.encode(midi::read_midi_file(path));
      EXPECT_EQ(shard.read(i), expected);
      EXPECT_EQ(expected.front(), tok.bos_id());
      EXPECT_EQ(expected.back(), tok.eos_id());
      ++items;
    }
  }
  EXPECT_EQ(items, 40);

  // Deterministic whatever the thread count: same tokens, same order.
  const fs::path out1 = fs::path(test::scratch_dir("pop909_sample_1thread"));
  run_prepare(repo_config("prepare_pop909_sample.yaml", out1, {"num_workers=1"}));
  auto again = open_shards(out1);
  for (auto& [split, shard] : shards) {
    const auto& other = again.at(split);
    ASSERT_EQ(other.size(), shard.size());
    for (int64_t i = 0; i < shard.size(); ++i) {
      EXPECT_EQ(other.item(i).source, shard.item(i).source);
      EXPECT_EQ(other.read(i), shard.read(i));
    }
  }
}

/// The songIDs of an EMOPIA song-level split file (*_SL.csv).
std::set<std::string> emopia_songs(const std::string& file) {
  std::set<std::string> out;
  std::ifstream in(test::shared_data("emopia/EMOPIA_1.0/split/" + file));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    if (!line.empty()) out.insert(line.substr(0, line.find(',')));
  }
  return out;
}

TEST(Prepare, EmopiaOfficialSongDisjointSplit) {
  const fs::path out = fs::path(test::scratch_dir("emopia"));
  const PrepareReport report = run_prepare(repo_config("prepare_emopia.yaml", out));
  EXPECT_TRUE(report.failed.empty());
  auto shards = open_shards(out);
  // Counts match the clip split files, and each split's songs are exactly the
  // song-level list EMOPIA publishes beside them.
  const std::map<std::string, std::pair<int64_t, std::string>> expected{
      {"train", {876, "train_SL.csv"}}, {"validation", {114, "val_SL.csv"}}, {"test", {88, "test_SL.csv"}}};
  std::map<std::string, std::string> song_split;
  for (auto& [split, shard] : shards) {
    EXPECT_EQ(shard.size(), expected.at(split).first) << split;
    std::set<std::string> songs;
    const int q = shard.label_index("quadrant"), v = shard.label_index("valence"), a = shard.label_index("arousal");
    ASSERT_GE(q, 0);
    for (int64_t i = 0; i < shard.size(); ++i) {
      const shards::ShardItem& it = shard.item(i);
      songs.insert(it.song_id);
      const auto [other, inserted] = song_split.emplace(it.song_id, split);
      EXPECT_TRUE(inserted || other->second == split) << it.song_id << " in " << split << " and " << other->second;
      // The clip name starts with its quadrant: Q1 +v+a, Q2 -v+a, Q3 -v-a, Q4 +v-a.
      const int quadrant = it.source[1] - '0';
      EXPECT_EQ(it.labels[static_cast<size_t>(q)].number, quadrant) << it.source;
      EXPECT_EQ(it.labels[static_cast<size_t>(v)].number, quadrant == 1 || quadrant == 4 ? 1.0 : -1.0);
      EXPECT_EQ(it.labels[static_cast<size_t>(a)].number, quadrant <= 2 ? 1.0 : -1.0);
    }
    EXPECT_EQ(songs, emopia_songs(expected.at(split).second)) << split;
  }
}

TEST(Prepare, GrooveOfficialSplitAndLabels) {
  const fs::path out = fs::path(test::scratch_dir("groove"));
  const PrepareReport report = run_prepare(repo_config("prepare_groove.yaml", out));
  EXPECT_TRUE(report.failed.empty());
  // info.csv, read line by line here (no field of it is quoted): split counts and bpm.
  std::map<std::string, int64_t> rows;
  std::map<std::string, double> bpm;
  std::ifstream in(test::shared_data("groove-midi/groove/info.csv"));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    ASSERT_EQ(f.size(), 11u) << line;
    ++rows[f[10]];
    bpm[f[7]] = std::stod(f[4]);
  }
  std::map<std::string, int64_t> dropped;
  for (const LeftOutFile& d : report.duplicates) ++dropped[d.split];
  auto shards = open_shards(out);
  for (auto& [split, shard] : shards) {
    EXPECT_EQ(shard.size() + dropped[split], rows[split]) << split;
    const int b = shard.label_index("bpm");
    for (int64_t i = 0; i < shard.size(); ++i) {
      EXPECT_EQ(shard.item(i).labels[static_cast<size_t>(b)].number, bpm.at(shard.item(i).source));
    }
  }
  // GMD ships one pair of byte-identical performances; the copy is dropped and listed.
  ASSERT_EQ(report.duplicates.size(), 1u);
  EXPECT_EQ(report.duplicates[0].path, "drummer2/session2/8_rock_130_beat_4-4.mid");
  EXPECT_EQ(report.duplicates[0].reason, "identical to drummer2/session2/7_rock_130_beat_4-4.mid (train)");
}

/// A folder-corpus config over the shared parser fixtures (which include
/// deliberately corrupted files and an empty MIDI).
PrepareConfig fixtures_config(const fs::path& dir, const std::string& on_error) {
  std::ofstream(dir / "cfg.yaml") << "data_root: " << KMIDI_SHARED_DATA << "\n"
                                  << "corpus:\n  root: .\n  include: ['miditok-tests/**/*.mid', "
                                     "'symusic-tests/**/*.mid', 'symusic-tests/**/*.midi']\n"
                                  << "tokenizer: {time_signature_fallback: 4/4}\n"
                                  << "on_error: " << on_error << "\n"
                                  << "output: {dir: out}\n";
  return load_prepare_config((dir / "cfg.yaml").string());
}

TEST(Prepare, OnErrorSkipListsTheCorruptedFiles) {
  const fs::path dir = fs::path(test::scratch_dir("fixtures_skip"));
  const PrepareReport report = run_prepare(fixtures_config(dir, "skip"));
  std::set<std::string> failed;
  for (const LeftOutFile& f : report.failed) {
    failed.insert(f.path);
    EXPECT_NE(f.reason.find(": byte "), std::string::npos) << f.reason;  // the reader's offset
    EXPECT_NE(f.reason.find(test::shared_data(f.path)), std::string::npos) << f.reason;
    EXPECT_EQ(f.kind, "unparsable") << f.path;
  }
  EXPECT_EQ(failed, (std::set<std::string>{"miditok-tests/tests/MIDIs_corrupted/ValueError_Control168.mid",
                                           "symusic-tests/tests/testcases/MIDIs_corrupted/Issue104_Bizarre_Love_Triangle2.mid",
                                           "symusic-tests/tests/testcases/MIDIs_corrupted/RunTimeError_unexpected_EOF.mid"}));
  ASSERT_EQ(report.too_short.size(), 1u);
  EXPECT_EQ(report.too_short[0].path, "miditok-tests/tests/MIDIs_one_track/empty.mid");
  EXPECT_EQ(report.too_short[0].kind, "too_short");
  // The counts per reason add up to the lists.
  const std::map<std::string, int64_t> counts = report.left_out_counts();
  EXPECT_EQ(counts.at("unparsable"), 3);
  EXPECT_EQ(counts.at("too_short"), 1);
  EXPECT_EQ(counts.at("duplicate"), static_cast<int64_t>(report.duplicates.size()));
  EXPECT_EQ(counts.at("unreadable") + counts.at("untokenizable") + counts.at("duplicate_elsewhere"), 0);
  int64_t items = 0;
  for (const SplitSummary& s : report.splits) items += s.items;
  EXPECT_EQ(items + 3 + 1 + static_cast<int64_t>(report.duplicates.size()), report.files);
  // The report on disk lists them too.
  const std::string json = files::read_all((dir / "out/prepare_report.json").string());
  EXPECT_NE(json.find("ValueError_Control168.mid"), std::string::npos);
  EXPECT_NE(json.find("\"unparsable\": 3"), std::string::npos);
}

TEST(Prepare, OnErrorFailStopsAtTheFirstBrokenFileAndWritesNothing) {
  const fs::path dir = fs::path(test::scratch_dir("fixtures_fail"));
  try {
    run_prepare(fixtures_config(dir, "fail"));
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(test::shared_data("miditok-tests/tests/MIDIs_corrupted/ValueError_Control168.mid") +
                                              ": byte 6042:",
                                          0),
              0u)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("(on_error: fail;"), std::string::npos);
  }
  EXPECT_TRUE(fs::is_empty(dir / "out"));  // no shard, no temporary file
}

int run_kmidi(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + " " + KMIDI_BINARY_DIR + "/kmidi " + args + " >/dev/null 2>&1";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(Prepare, KilledPrepareLeavesNoHalfShard) {
  const fs::path out = fs::path(test::scratch_dir("killed"));
  const std::string config = repo("configs/prepare_pop909_sample.yaml");
  ASSERT_EQ(run_kmidi("prepare --config " + config + " output.dir=" + out.string()), 0);
  const std::string old_sha = tokenizer::Tokenizer::load((out / "tokenizer.json").string()).sha256();
  // A second run with another tokenizer dies while committing validation.h5,
  // the last shard it commits (train.h5, whose writer is open, then test.h5
  // are already replaced).
  const int code = run_kmidi("prepare --config " + config + " output.dir=" + out.string() + " tokenizer.velocity_bins=16",
                             "KMIDI_FAULT=shard_commit:validation.h5");
  EXPECT_EQ(code, 128 + SIGKILL);
  // Every shard is whole: the old or the new, never half of one.
  auto shards = open_shards(out);
  EXPECT_NE(shards.at("train").tokenizer_sha256(), old_sha);
  EXPECT_NE(shards.at("test").tokenizer_sha256(), old_sha);
  EXPECT_EQ(shards.at("validation").tokenizer_sha256(), old_sha);
  EXPECT_EQ(tokenizer::Tokenizer::load((out / "tokenizer.json").string()).sha256(), old_sha);
  // The mix is detected by validation...
  const PrepareConfig c = repo_config("prepare_pop909_sample.yaml", out);
  const ValidationReport v = run_validate(c, config);
  bool flagged = false;
  for (const FileIssue& p : v.shard_problems) flagged |= p.reason.find("different tokenizer") != std::string::npos;
  EXPECT_TRUE(flagged);
  EXPECT_FALSE(v.passed());
  // ...and the next prepare removes the dead run's temporary file and makes it whole.
  bool temp_left = false;
  for (const auto& e : fs::directory_iterator(out)) temp_left |= e.path().filename().string().find(".tmp.") != std::string::npos;
  EXPECT_TRUE(temp_left);
  run_prepare(c);
  for (const auto& e : fs::directory_iterator(out)) EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos);
  EXPECT_TRUE(run_validate(c, config).passed());
}

}  // namespace
}  // namespace kmidi::corpus
