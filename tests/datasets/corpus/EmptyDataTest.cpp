// Data that cannot train anything is refused where it is made and where it
// is checked: kmidi prepare on a folder without MIDI files or with a split
// left empty fails with exit 3 naming the folder, the patterns or the split,
// and writes nothing; kmidi validate never passes such data, and writes its
// report only where --report says. Also: KMIDI_DATA_ROOT does not move the
// repo's sample, whose prepare config has no data_root.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/corpus/Prepare.h"
#include "datasets/corpus/Validate.h"
#include "datasets/shards/ShardWriter.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "tests/support/TestSupport.h"

namespace kmidi::corpus {
namespace {

namespace fs = std::filesystem;

const std::string kSample = std::string(KMIDI_SOURCE_DIR) + "/data/pop909-sample";

/// Every path under `dir`, relative to it.
std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.insert(fs::relative(e.path(), dir).string());
  return out;
}

/// `kmidi ARGS` run in `cwd`, stdout and stderr together.
test::CommandResult kmidi_in(const fs::path& cwd, const std::string& args) {
  return test::run_shell("cd " + test::shell_quote(cwd.string()) + " && " + KMIDI_BINARY_DIR + "/kmidi " + args +
                         " 2>&1");
}

/// A prepare config over `root` (relative to the config's folder) writing to out/.
fs::path write_config(const fs::path& dir, const std::string& corpus_yaml) {
  std::ofstream(dir / "cfg.yaml") << "corpus:\n" << corpus_yaml
                                  << "tokenizer: {time_signatures: false, program_mode: none}\n"
                                  << "output: {dir: out}\n";
  return dir / "cfg.yaml";
}

std::string error_of(const PrepareConfig& config) {
  try {
    run_prepare(config);
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(EmptyData, PrepareRefusesAFolderWithoutMidiFiles) {
  const fs::path dir = fs::path(test::scratch_dir("empty_folder"));
  fs::create_directories(dir / "songs");
  std::ofstream(dir / "songs/README.txt") << "no MIDI here\n";
  const fs::path cfg = write_config(dir, "  root: songs\n  include: ['*.mid', '*.midi']\n  exclude: ['x*']\n");

  EXPECT_EQ(error_of(load_prepare_config(cfg.string())),
            (dir / "songs").string() +
                ": no MIDI files: nothing under this folder matches corpus.include [*.mid, *.midi] (corpus.exclude [x*])");
  const test::CommandResult r = kmidi_in(dir, "prepare --config cfg.yaml");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("kmidi: data error: " + (dir / "songs").string() + ": no MIDI files"), std::string::npos)
      << r.output;
  EXPECT_EQ(listing(dir), (std::set<std::string>{"cfg.yaml", "songs", "songs/README.txt"}));  // no out/, no shard
}

TEST(EmptyData, PrepareNamesASplitThatGetsNoFile) {
  // 001..009: the hash split puts 005 in validation and none in test.
  const fs::path dir = fs::path(test::scratch_dir("empty_split"));
  const fs::path cfg = write_config(dir, "  root: " + kSample + "\n  include: ['00*.mid']\n");
  EXPECT_EQ(error_of(load_prepare_config(cfg.string())),
            kSample + ": split 'test' gets no file (9 files: train 8, validation 1, test 0); every split in "
                      "split.names needs files: add files, or change split.names and split.ratios");
  EXPECT_FALSE(fs::exists(dir / "out"));
  // Naming two splits is enough for these files.
  const PrepareReport report =
      run_prepare(load_prepare_config(cfg.string(), {"split.names=[train, validation]", "split.ratios=[0.8, 0.2]"}));
  ASSERT_EQ(report.splits.size(), 2u);
  EXPECT_GT(report.splits[1].items, 0);
}

TEST(EmptyData, PrepareNamesASplitWhoseFilesWereAllLeftOut) {
  // validation holds one file without notes: min_notes 1 leaves it out.
  const fs::path dir = fs::path(test::scratch_dir("emptied_split"));
  fs::create_directories(dir / "files");
  fs::copy_file(kSample + "/001.mid", dir / "files/a.mid");
  fs::copy_file(kSample + "/002.mid", dir / "files/b.mid");
  fs::copy_file(test::shared_data("miditok-tests/tests/MIDIs_one_track/empty.mid"), dir / "files/c.mid");
  std::ofstream(dir / "files/manifest.csv") << "file,split\na.mid,train\nb.mid,test\nc.mid,validation\n";
  const fs::path cfg =
      write_config(dir, "  root: files\n  manifest: {path: files/manifest.csv, file_column: file, split_column: split}\n");
  std::ofstream(cfg, std::ios::app) << "split: {method: manifest}\n";
  EXPECT_EQ(error_of(load_prepare_config(cfg.string())),
            (dir / "out").string() +
                ": split 'validation' has no items: its files were all left out (0 failed, 1 too short, 0 duplicates); "
                "nothing was written (the log lists the files left out)");
  EXPECT_TRUE(fs::is_empty(dir / "out"));  // no shard, no temporary file
}

TEST(EmptyData, ValidateNeverPassesAnEmptyCorpus) {
  const fs::path dir = fs::path(test::scratch_dir("validate_empty"));
  fs::create_directories(dir / "songs");
  write_config(dir, "  root: songs\n  include: ['*.mid']\n");
  const test::CommandResult r = kmidi_in(dir, "validate --config cfg.yaml");
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_EQ(r.output.find("PASSED"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("dataset validation failed: " + (dir / "songs").string() +
                          ": no MIDI files: nothing under this folder matches corpus.include [*.mid]"),
            std::string::npos)
      << r.output;
}

TEST(EmptyData, ValidateNeverPassesAnEmptyShard) {
  const fs::path dir = fs::path(test::scratch_dir("validate_empty_shard"));
  const fs::path cfg = write_config(dir, "  root: " + kSample + "\n  include: ['00*.mid', '01*.mid']\n");
  const PrepareConfig config = load_prepare_config(cfg.string());
  run_prepare(config);
  ASSERT_TRUE(run_validate(config, cfg.string()).passed());
  // The test shard replaced by a well-formed one without items.
  const tokenizer::Tokenizer tok(config.tokenizer);
  shards::ShardWriter empty((dir / "out/test.h5").string(), "test",
                            shards::ShardVocab{tok.vocab_size(), tok.pad_id(), tok.sha256()}, {});
  empty.commit();
  const ValidationReport r = run_validate(config, cfg.string());
  EXPECT_FALSE(r.passed());
  EXPECT_NE(std::find(r.violations.begin(), r.violations.end(),
                      "shard " + (dir / "out/test.h5").string() + " (split test) holds no items"),
            r.violations.end())
      << r.summary();
  EXPECT_EQ(r.summary().find("PASSED"), std::string::npos);
}

TEST(EmptyData, ValidateWritesItsReportOnlyWhereAsked) {
  const fs::path dir = fs::path(test::scratch_dir("validate_report"));
  write_config(dir, "  root: " + kSample + "\n  include: ['00*.mid', '01*.mid']\n");
  const std::set<std::string> before = listing(dir);
  test::CommandResult r = kmidi_in(dir, "validate --config cfg.yaml");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("PASSED"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("report: not written (--report FILE writes one)"), std::string::npos) << r.output;
  EXPECT_EQ(listing(dir), before);  // no validate_report.json in the working directory
  r = kmidi_in(dir, "validate --config cfg.yaml --report reports/v.json");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(files::read_all((dir / "reports/v.json").string()).find("\"passed\": true"), std::string::npos);
}

// The README's setup with KMIDI_DATA_ROOT pointing at the shared data sets:
// the sample's prepare config, which has no data_root, still reads the repo's
// data/pop909-sample beside configs/.
TEST(EmptyData, DataRootDoesNotMoveTheRepoSample) {
  const fs::path dir = fs::path(test::scratch_dir("data_root_sample"));
  const std::string config = std::string(KMIDI_SOURCE_DIR) + "/configs/prepare_pop909_sample.yaml";
  const test::CommandResult r = kmidi_in(dir, "prepare --config " + config + " --print-config");
  const test::CommandResult with_root =
      test::run_shell("cd " + dir.string() + " && KMIDI_DATA_ROOT=" + dir.string() + "/elsewhere " KMIDI_BINARY_DIR
                      "/kmidi prepare --config " + config + " --print-config 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(with_root.exit_code, 0) << with_root.output;
  EXPECT_NE(with_root.output.find("root: " + kSample + "\n"), std::string::npos) << with_root.output;
  EXPECT_EQ(with_root.output, r.output);
}

}  // namespace
}  // namespace kmidi::corpus
