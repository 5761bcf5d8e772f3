// kmidi validate finds the problems planted in a corpus assembled from real
// files, exits 4 when thresholds are exceeded, respects them, checks
// prepared shards, and writes nothing but its report.

#include "datasets/corpus/Validate.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/Files.h"
#include "datasets/corpus/Prepare.h"
#include "datasets/shards/detail/Hdf5.h"
#include "tests/support/TestSupport.h"

namespace kmidi::corpus {
namespace {

namespace fs = std::filesystem;

/// A labelled corpus with one of each problem:
///   corrupt.mid   miditok's ValueError_Control168.mid (a data byte > 127)
///   empty.mid     miditok's empty.mid (no notes)
///   d.mid         a copy of a.mid, in test while a.mid is in train
///   e.mid         a manifest row with quadrant 7
///   missing.mid   listed, absent
///   extra.mid     present, not listed
fs::path planted_corpus(const std::string& name) {
  const fs::path dir = fs::path(test::scratch_dir(name));
  const fs::path files = dir / "files";
  fs::create_directories(files);
  const std::string pop = std::string(KMIDI_SOURCE_DIR) + "/data/pop909-sample/";
  fs::copy_file(pop + "001.mid", files / "a.mid");
  fs::copy_file(pop + "002.mid", files / "b.mid");
  fs::copy_file(pop + "003.mid", files / "c.mid");
  fs::copy_file(pop + "001.mid", files / "d.mid");
  fs::copy_file(pop + "004.mid", files / "e.mid");
  fs::copy_file(pop + "005.mid", files / "extra.mid");
  fs::copy_file(test::shared_data("miditok-tests/tests/MIDIs_corrupted/ValueError_Control168.mid"), files / "corrupt.mid");
  fs::copy_file(test::shared_data("miditok-tests/tests/MIDIs_one_track/empty.mid"), files / "empty.mid");
  std::ofstream(files / "manifest.csv") << "file,quadrant,split\n"
                                           "a.mid,1,train\n"
                                           "b.mid,2,train\n"
                                           "c.mid,3,test\n"
                                           "d.mid,4,test\n"
                                           "e.mid,7,validation\n"
                                           "corrupt.mid,1,train\n"
                                           "empty.mid,2,validation\n"
                                           "missing.mid,3,train\n";
  std::ofstream(dir / "cfg.yaml") << "corpus:\n"
                                     "  root: files\n"
                                     "  manifest: {path: files/manifest.csv, file_column: file, split_column: split}\n"
                                     "  labels: [{name: quadrant, type: quadrant}]\n"
                                     "split: {method: manifest}\n"
                                     "tokenizer: {time_signatures: false, program_mode: none}\n"
                                     "output: {dir: out}\n";
  return dir;
}

TEST(Validate, FindsEveryPlantedProblem) {
  const fs::path dir = planted_corpus("planted");
  const PrepareConfig config = load_prepare_config((dir / "cfg.yaml").string());
  const ValidationReport r = run_validate(config, (dir / "cfg.yaml").string());
  EXPECT_EQ(r.files, 8);
  EXPECT_EQ(r.parsed, 6);
  ASSERT_EQ(r.parse_failures.size(), 1u);
  EXPECT_EQ(r.parse_failures[0].path, "corrupt.mid");
  EXPECT_NE(r.parse_failures[0].reason.find("byte 6042: data byte 0xA8 > 127"), std::string::npos) << r.parse_failures[0].reason;
  ASSERT_EQ(r.missing.size(), 1u);
  EXPECT_EQ(r.missing[0].path, "missing.mid");
  EXPECT_NE(r.missing[0].reason.find("manifest.csv:9"), std::string::npos);
  ASSERT_EQ(r.empty.size(), 1u);
  EXPECT_EQ(r.empty[0].path, "empty.mid");
  ASSERT_EQ(r.duplicates_across_splits.size(), 1u);
  EXPECT_EQ(r.duplicates_across_splits[0].files,
            (std::vector<std::pair<std::string, std::string>>{{"a.mid", "train"}, {"d.mid", "test"}}));
  EXPECT_EQ(r.duplicate_copies_within_split, 0);
  ASSERT_EQ(r.corpus_problems.size(), 1u);
  EXPECT_EQ(r.corpus_problems[0].kind, "label");
  EXPECT_EQ(r.corpus_problems[0].where, (dir / "files/manifest.csv").string() + ":6");
  EXPECT_NE(r.corpus_problems[0].message.find("is '7': expected a quadrant"), std::string::npos);
  EXPECT_EQ(r.unlisted, (std::vector<std::string>{"extra.mid"}));
  EXPECT_FALSE(r.shards_present);
  EXPECT_EQ(r.notes.count, 6);
  EXPECT_EQ(r.notes.min, 0);
  EXPECT_GT(r.pitch_histogram[60], 0);
  EXPECT_EQ(r.violations, (std::vector<std::string>{
                              "parse failures: 1 > max_parse_failures 0",
                              "missing files: 1 > max_missing_files 0",
                              "empty files: 1 > max_empty_files 0",
                              "label and manifest problems: 1 > max_label_problems 0",
                              "contents in more than one split: 1 > max_duplicates_across_splits 0",
                          }));
  const auto j = nlohmann::json::parse(r.to_json());
  EXPECT_EQ(j["passed"], false);
  EXPECT_EQ(j["parse_failures"][0]["path"], "corrupt.mid");
  EXPECT_EQ(j["duplicates"]["across_splits"][0]["files"][1]["split"], "test");
  EXPECT_NE(r.summary().find("FAILED: parse failures: 1 > max_parse_failures 0"), std::string::npos) << r.summary();
}

std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> snapshot(const fs::path& dir) {
  std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    out[e.path().string()] = {e.is_regular_file() ? e.file_size() : 0, e.last_write_time()};
  }
  return out;
}

int run_kmidi(const std::string& args, std::string* output = nullptr) {
  const std::string cmd = std::string(KMIDI_BINARY_DIR) + "/kmidi " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  const int status = ::pclose(p);
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Validate, CommandExitsFourWritesOnlyItsReportAndRespectsThresholds) {
  const fs::path dir = planted_corpus("planted_cli");
  const std::string cfg = (dir / "cfg.yaml").string();
  const fs::path report_dir = fs::path(test::scratch_dir("planted_cli_reports"));
  const auto before = snapshot(dir);
  std::string out;
  EXPECT_EQ(run_kmidi("validate --config " + cfg + " --report " + (report_dir / "r.json").string(), &out), 4) << out;
  EXPECT_NE(out.find("parse failures 1, missing 1, empty 1"), std::string::npos) << out;
  EXPECT_NE(out.find("kmidi: check failed: dataset validation failed: parse failures: 1 > max_parse_failures 0"),
            std::string::npos) << out;
  EXPECT_EQ(snapshot(dir), before);  // nothing written beside the data, no output folder created
  EXPECT_FALSE(fs::exists(dir / "out"));
  EXPECT_EQ(nlohmann::json::parse(files::read_all((report_dir / "r.json").string()))["passed"], false);

  const std::string relaxed = " validate.max_parse_failures=1 validate.max_missing_files=1 validate.max_empty_files=1"
                              " validate.max_label_problems=1 validate.max_duplicates_across_splits=1";
  EXPECT_EQ(run_kmidi("validate --config " + cfg + " --report " + (report_dir / "ok.json").string() + relaxed, &out), 0)
      << out;
  EXPECT_NE(out.find("PASSED"), std::string::npos) << out;
  // One limit back at 0 fails again, naming that limit only.
  EXPECT_EQ(run_kmidi("validate --config " + cfg + " --report " + (report_dir / "r2.json").string() + relaxed +
                          " validate.max_empty_files=0",
                      &out),
            4);
  EXPECT_NE(out.find("dataset validation failed: empty files: 1 > max_empty_files 0 (see"), std::string::npos) << out;
  EXPECT_EQ(snapshot(dir), before);
}

TEST(Validate, ChecksPreparedShards) {
  const fs::path dir = fs::path(test::scratch_dir("shards"));
  std::ofstream(dir / "cfg.yaml") << "corpus:\n  root: " << KMIDI_SOURCE_DIR << "/data/pop909-sample\n"
                                  << "  include: ['00*.mid', '01*.mid']\n"  // every split gets files
                                  << "tokenizer: {time_signatures: false, program_mode: none}\n"
                                  << "output: {dir: out}\n";
  const std::string cfg = (dir / "cfg.yaml").string();
  PrepareConfig config = load_prepare_config(cfg);
  run_prepare(config);
  ValidationReport r = run_validate(config, cfg);
  EXPECT_TRUE(r.passed()) << r.summary();
  EXPECT_TRUE(r.shards_present);
  ASSERT_EQ(r.shards.size(), 3u);

  // A token id beyond the vocabulary, written straight into the HDF5 file.
  const std::string train = (dir / "out/train.h5").string();
  {
    shards::detail::Handle f = shards::detail::file_handle(H5Fopen(train.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), train, "open");
    shards::detail::Handle d = shards::detail::dataset_handle(H5Dopen2(f.get(), "tokens", H5P_DEFAULT), train, "open");
    shards::detail::Handle space = shards::detail::space_handle(H5Dget_space(d.get()), train, "space");
    hsize_t at[1] = {7}, one[1] = {1};
    H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, at, nullptr, one, nullptr);
    shards::detail::Handle mem = shards::detail::space_handle(H5Screate_simple(1, one, nullptr), train, "mem");
    const int32_t bad = 30000;
    shards::detail::check(H5Dwrite(d.get(), H5T_NATIVE_INT32, mem.get(), space.get(), H5P_DEFAULT, &bad), train, "write");
  }
  r = run_validate(config, cfg);
  EXPECT_EQ(r.out_of_range_tokens, 1);
  ASSERT_FALSE(r.shard_problems.empty());
  const int32_t vocab = tokenizer::Tokenizer(config.tokenizer).vocab_size();
  EXPECT_NE(r.shard_problems[0].reason.find("token id 30000 outside [0, " + std::to_string(vocab) + ") at position 7 of '"),
            std::string::npos)
      << r.shard_problems[0].reason;
  EXPECT_NE(std::find(r.violations.begin(), r.violations.end(), "out-of-range token ids: 1 > max_out_of_range_tokens 0"),
            r.violations.end());

  // A tokenizer section that no longer matches the prepared shards.
  config = load_prepare_config(cfg, {"tokenizer.velocity_bins=8"});
  r = run_validate(config, cfg);
  bool stale = false;
  for (const FileIssue& p : r.shard_problems) stale |= p.reason.find("differs from the config's tokenizer section") != std::string::npos;
  EXPECT_TRUE(stale);

  // Items whose source left the corpus.
  config = load_prepare_config(cfg, {"corpus.include=['001.mid', '002.mid']"});
  r = run_validate(config, cfg);
  int stale_items = 0;
  for (const FileIssue& p : r.shard_problems) stale_items += p.reason.find("is not in the corpus (stale shard") != std::string::npos;
  EXPECT_EQ(stale_items, 17);  // 003..019 are in the shards but not in the corpus
}

}  // namespace
}  // namespace kmidi::corpus
