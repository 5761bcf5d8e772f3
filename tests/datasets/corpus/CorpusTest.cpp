// Corpus description: manifests, labels, splits and the problems they can
// have, each named by file and line.

#include "datasets/corpus/Corpus.h"

#include <gtest/gtest.h>

#include <filesystem>

#include <cstdlib>
#include <fstream>
#include <map>

#include "core/Errors.h"
#include "core/Hash.h"
#include "datasets/corpus/PrepareConfig.h"
#include "tests/support/TestSupport.h"

namespace kmidi::corpus {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

/// Reads a PrepareConfig from YAML text placed in `dir` (paths resolve there).
PrepareConfig config_in(const fs::path& dir, const std::string& yaml) {
  write(dir / "cfg.yaml", yaml + "output: {dir: out}\n");
  return load_prepare_config((dir / "cfg.yaml").string());
}

TEST(CorpusListing, EveryFileGivesBackItsPathAndSongIdWhetherOrNotTheIdIsPartOfThePath) {
  // Ids inside their path are stored as a place in it, others as text after
  // it; a mix of both must read back exactly, file by file.
  Corpus c;
  c.split_names = {"train", "test"};
  const std::vector<std::pair<std::string, std::string>> files{
      {"a/001.mid", "001"},        {"a/002.mid", "song-two"}, {"b/x.mid", "b/x"}, {"b/y.mid", ""},
      {"c/long/path.mid", "path"}, {"d.mid", "from a manifest"}, {"e.mid", "e"}};
  for (size_t i = 0; i < files.size(); ++i) {
    CorpusEntry e;
    e.relative = files[i].first;
    e.song_id = files[i].second;
    e.split = i % 2 ? "test" : "train";
    c.add(e);
  }
  ASSERT_EQ(c.size(), files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(c.relative(i), files[i].first) << i;
    EXPECT_EQ(c.song_id(i), files[i].second) << i;
    EXPECT_EQ(c.split(i), i % 2 ? "test" : "train") << i;
  }
}

std::string problems_text(const Corpus& c) {
  std::string s;
  for (const auto& p : c.problems) s += p.kind + "|" + p.where + "|" + p.message + "\n";
  return s;
}

bool has_problem(const Corpus& c, const std::string& kind, const std::string& where, const std::string& text) {
  for (const auto& p : c.problems) {
    if (p.kind == kind && p.where == where && p.message.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(Corpus, HashSplitFollowsSha256OfSaltAndSong) {
  SplitConfig s;
  for (const char* song : {"001", "002", "abc", "song with spaces"}) {
    // Reference: the first 64 bits of sha256(salt \0 song) as a fraction of 2^64.
    const std::string digest = hash::sha256_hex(std::string("kmidi-split-v1") + '\0' + song);
    const double u = static_cast<double>(std::strtoull(digest.substr(0, 16).c_str(), nullptr, 16)) / 18446744073709551616.0;
    const std::string expected = u < 0.8 ? "train" : u < 0.9 ? "validation" : "test";
    EXPECT_EQ(hash_split(song, s), expected) << song;
  }
}

TEST(Corpus, Pop909HashSplitIsSongLevelAndNearTheRatios) {
  const fs::path dir = fs::path(test::scratch_dir("pop909_split"));
  const PrepareConfig c = config_in(dir, "corpus: {root: " + test::shared_data("pop909/POP909") +
                                             ", include: ['*/*.mid'], song_id_pattern: '^([0-9]+)/'}\n");
  const Corpus corpus = load_corpus(c.corpus, c.split);
  ASSERT_EQ(corpus.size(), 909u);
  EXPECT_TRUE(corpus.problems.empty()) << problems_text(corpus);
  std::map<std::string, int> counts;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const CorpusEntry e = corpus.entry(i);
    EXPECT_EQ(e.song_id, e.relative.substr(0, 3));
    ++counts[e.split];
  }
  EXPECT_NEAR(counts["train"] / 909.0, 0.8, 0.05);
  EXPECT_NEAR(counts["validation"] / 909.0, 0.1, 0.04);
  EXPECT_NEAR(counts["test"] / 909.0, 0.1, 0.04);
}

const char* kManifestConfig =
    "corpus:\n"
    "  root: files\n"
    "  manifest: {path: files/manifest.csv, file_column: file, split_column: split}\n"
    "  song_id_pattern: '^([a-z]+)[0-9]*\\.mid$'\n"
    "  labels:\n"
    "    - {name: quadrant, column: q, type: quadrant}\n"
    "    - {name: style, type: text, allowed: [rock, jazz]}\n"
    "    - {name: bpm, type: float, required: false}\n"
    "split: {method: manifest}\n";

TEST(Corpus, ManifestLabelsAndDerivedEmotion) {
  const fs::path dir = fs::path(test::scratch_dir("manifest_ok"));
  write(dir / "files/manifest.csv",
        "file,q,style,bpm,split\n"
        "a1.mid,1,rock,120,train\n"
        "a2.mid,2,jazz,,train\n"
        "b1.mid,3,rock,90.5,test\n"
        "c1.mid,4,jazz,100,validation\n");
  for (const char* f : {"a1.mid", "a2.mid", "b1.mid", "c1.mid", "stray.mid"}) write(dir / "files" / f, "x");
  const PrepareConfig c = config_in(dir, kManifestConfig);
  const Corpus corpus = load_corpus(c.corpus, c.split);
  EXPECT_TRUE(corpus.problems.empty()) << problems_text(corpus);
  ASSERT_EQ(corpus.label_columns.size(), 5u);  // quadrant, valence, arousal, style, bpm
  EXPECT_EQ(corpus.label_columns[1].name, "valence");
  EXPECT_EQ(corpus.label_columns[3].kind, shards::LabelKind::kText);
  ASSERT_EQ(corpus.size(), 4u);
  const double va[4][2] = {{1, 1}, {-1, 1}, {-1, -1}, {1, -1}};  // Q1..Q4
  for (int q = 0; q < 4; ++q) {
    const CorpusEntry e = corpus.entry(static_cast<size_t>(q));
    EXPECT_EQ(e.labels[0].number, q + 1);
    EXPECT_EQ(e.labels[1].number, va[q][0]) << e.relative;
    EXPECT_EQ(e.labels[2].number, va[q][1]) << e.relative;
  }
  EXPECT_TRUE(std::isnan(corpus.entry(1).labels[4].number));  // optional bpm left empty
  EXPECT_EQ(corpus.entry(2).labels[4].number, 90.5);
  EXPECT_EQ(corpus.entry(0).song_id, "a");
  EXPECT_EQ(corpus.entry(2).split, "test");
  EXPECT_EQ(corpus.entry(0).origin, (dir / "files/manifest.csv").string() + ":2");
  EXPECT_EQ(corpus.unlisted, (std::vector<std::string>{"stray.mid"}));
  EXPECT_NO_THROW(require_no_problems(corpus));
}

TEST(Corpus, EveryManifestProblemNamesItsLine) {
  const fs::path dir = fs::path(test::scratch_dir("manifest_bad"));
  write(dir / "files/manifest.csv",
        "file,q,style,bpm,split\n"
        "a1.mid,7,rock,120,train\n"   // 2: quadrant out of range
        "a2.mid,2,blues,,train\n"     // 3: style not allowed
        "b1.mid,,rock,fast,test\n"    // 4: empty quadrant, bpm not a number
        "c1.mid,4,jazz,100,validation\n"  // 5: fine
        "a1.mid,1,rock,1,train\n"     // 6: listed again
        "d1.mid,1,rock,1,holdout\n"   // 7: unknown split
        "a3.mid,1,rock,1,test\n"      // 8: song 'a' now in train and test
        "/abs.mid,1,rock,1,test\n"    // 9: absolute
        "e_x.mid,1,rock,1,test\n");   // 10: song id pattern does not match
  for (const char* f : {"a1.mid", "a2.mid", "b1.mid", "c1.mid", "d1.mid", "a3.mid", "e_x.mid"}) write(dir / "files" / f, "x");
  const PrepareConfig c = config_in(dir, kManifestConfig);
  const Corpus corpus = load_corpus(c.corpus, c.split);
  const std::string m = (dir / "files/manifest.csv").string();
  EXPECT_TRUE(has_problem(corpus, "label", m + ":2", "label 'quadrant' (column q) is '7': expected a quadrant 1, 2, 3 or 4"))
      << problems_text(corpus);
  EXPECT_TRUE(has_problem(corpus, "label", m + ":3", "label 'style' (column style) is 'blues': not one of rock, jazz"));
  EXPECT_TRUE(has_problem(corpus, "label", m + ":4", "label 'quadrant' (column q) is empty"));
  EXPECT_TRUE(has_problem(corpus, "label", m + ":4", "label 'bpm' (column bpm) is 'fast': expected a finite number"));
  EXPECT_TRUE(has_problem(corpus, "manifest", m + ":6", "'a1.mid' is listed again (first at " + m + ":2)"));
  EXPECT_TRUE(has_problem(corpus, "split", m + ":7", "split 'holdout' is not one of train, validation, test"));
  EXPECT_TRUE(has_problem(corpus, "song_leak", "a", "song 'a' is in more than one split: test (a3.mid); train (a1.mid, a2.mid)"));
  EXPECT_TRUE(has_problem(corpus, "manifest", m + ":9", "'/abs.mid' is an absolute path"));
  EXPECT_TRUE(has_problem(corpus, "song_id", "e_x.mid", "corpus.song_id_pattern does not match 'e_x.mid'"));
  EXPECT_EQ(corpus.problems.size(), 9u) << problems_text(corpus);
  try {
    require_no_problems(corpus);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("the corpus description has 9 problem(s): " + m + ":2: label 'quadrant'"),
              std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("and 4 more (run kmidi validate for the full list)"), std::string::npos);
  }
}

TEST(Corpus, MalformedManifestIsOneProblemNamingItsLine) {
  const fs::path dir = fs::path(test::scratch_dir("manifest_malformed"));
  write(dir / "files/manifest.csv", "file,q,style,bpm,split\na1.mid,1,rock,1,train\nb1.mid,2,jazz,train\n");
  write(dir / "files/a1.mid", "x");
  const PrepareConfig c = config_in(dir, kManifestConfig);
  const Corpus corpus = load_corpus(c.corpus, c.split);
  const std::string m = (dir / "files/manifest.csv").string();
  ASSERT_EQ(corpus.problems.size(), 1u) << problems_text(corpus);
  EXPECT_EQ(corpus.problems[0].kind, "manifest");
  EXPECT_EQ(corpus.problems[0].message, m + ":3: expected 5 fields, got 4");
  EXPECT_TRUE(corpus.empty());
  EXPECT_EQ(corpus.unlisted, (std::vector<std::string>{"a1.mid"}));
}

TEST(Corpus, MissingColumnsAreProblemsAtTheHeader) {
  const fs::path dir = fs::path(test::scratch_dir("manifest_columns"));
  write(dir / "files/manifest.csv", "name,q,split\na1.mid,1,train\n");
  const PrepareConfig c = config_in(dir, kManifestConfig);
  const Corpus corpus = load_corpus(c.corpus, c.split);
  const std::string m = (dir / "files/manifest.csv").string();
  EXPECT_TRUE(has_problem(corpus, "manifest", m + ":1",
                          "missing column 'file' (corpus.manifest.file_column); header has: name, q, split"))
      << problems_text(corpus);
  EXPECT_TRUE(has_problem(corpus, "manifest", m + ":1", "missing column 'style' (corpus.labels[1].column)"));
  EXPECT_TRUE(corpus.empty());
}

TEST(Corpus, SplitFilesMustCoverTheCorpusOnce) {
  const fs::path dir = fs::path(test::scratch_dir("split_files"));
  for (const char* f : {"a.mid", "b.mid", "c.mid", "d.mid"}) write(dir / "files" / f, "x");
  write(dir / "train.csv", ",clip\n0,a.mid\n1,b.mid\n");
  write(dir / "test.csv", ",clip\n0,b.mid\n1,zz.mid\n");
  const PrepareConfig c = config_in(dir,
                                    "corpus: {root: files}\n"
                                    "split:\n  method: files\n  names: [train, test]\n  files:\n"
                                    "    - {split: train, path: train.csv, column: clip}\n"
                                    "    - {split: test, path: test.csv, column: clip}\n");
  const Corpus corpus = load_corpus(c.corpus, c.split);
  const std::string t = (dir / "test.csv").string();
  EXPECT_TRUE(has_problem(corpus, "split", t + ":2", "'b.mid' is also listed for split train at " + (dir / "train.csv").string() + ":3"))
      << problems_text(corpus);
  EXPECT_TRUE(has_problem(corpus, "split", t + ":3", "'zz.mid' is not in the corpus"));
  EXPECT_TRUE(has_problem(corpus, "split", "c.mid", "'c.mid' is in no split file"));
  EXPECT_TRUE(has_problem(corpus, "split", "d.mid", "'d.mid' is in no split file"));
  EXPECT_EQ(corpus.problems.size(), 4u) << problems_text(corpus);
  EXPECT_EQ(corpus.entry(1).split, "train");
}

std::string config_error(const std::string& yaml) {
  const fs::path dir = fs::path(test::scratch_dir("config_error"));
  try {
    config_in(dir, yaml);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(Corpus, ConfigRules) {
  EXPECT_NE(config_error("corpus: {root: x, labels: [{name: q}]}\n").find("corpus.labels: need a manifest"), std::string::npos);
  EXPECT_NE(config_error("corpus: {root: x}\nsplit: {ratios: [0.5, 0.2, 0.2]}\n").find("split.ratios: must sum to 1"),
            std::string::npos);
  EXPECT_NE(config_error("corpus: {root: x}\nsplit: {ratios: [0.5, 0.5]}\n").find("needs one ratio per split name (3), got 2"),
            std::string::npos);
  EXPECT_NE(config_error("corpus: {root: x}\nsplit: {method: manifest}\n")
                .find("method manifest needs corpus.manifest.path and corpus.manifest.split_column"),
            std::string::npos);
  EXPECT_NE(config_error("corpus: {root: x, song_id_pattern: 'abc'}\n").find("needs a capture group"), std::string::npos);
  EXPECT_NE(config_error("corpus: {root: x, song_id_pattern: '(abc'}\n").find("is not a valid regular expression"),
            std::string::npos);
  EXPECT_NE(config_error("corpus: {root: x}\nsplit: {method: files, files: [{split: dev, path: a.csv, column: c}]}\n")
                .find("names split 'dev', which is not one of train, validation, test"),
            std::string::npos);
  EXPECT_NE(config_error("corpus: {root: x}\non_error: ignore\n").find("must be one of fail, skip"), std::string::npos);
  EXPECT_NE(config_error("corpus: {root: x, manifest: {path: m.csv}}\n").find("file_column: is required"),
            std::string::npos);
}

}  // namespace
}  // namespace kmidi::corpus
