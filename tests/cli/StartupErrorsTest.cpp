// `kmidi train` start-up errors leave the file system as it was (no
// runs/<name>/config.yaml, no empty train.log), and the README's generator
// commands work with KMIDI_DATA_ROOT set in a checkout without ../shared:
// configs name their prepare config and the repo's sample relative to
// themselves, never to the data root.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/Files.h"
#include "datasets/shards/ShardWriter.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "tests/support/TestSupport.h"

namespace kmidi::cli {
namespace {

namespace fs = std::filesystem;

test::CommandResult kmidi(const std::string& args, const std::string& env = "") {
  return test::run_shell(env + " " + test::shell_quote(KMIDI_CLI) + " " + args + " 2>&1");
}

/// The repo's sample prepared into `dir`/shards.
std::string sample_shards(const std::string& dir) {
  const std::string shards = dir + "/shards";
  const test::CommandResult r =
      kmidi("prepare --config " + test::source_path("configs/prepare_pop909_sample.yaml") + " output.dir=" + shards);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return shards;
}

/// `kmidi train` on the tiny generator job with its run folder under `dir`/runs.
test::CommandResult train_tiny(const std::string& dir, const std::string& overrides) {
  return kmidi("train --config " + test::source_path("configs/midi_generator_tiny.yaml") + " run.output_dir=" + dir +
               "/runs train.max_steps=2 train.eval_every=0 " + overrides);
}

TEST(StartupErrors, PadIdDisagreeingWithTheTokenizerLeavesNoRunFolder) {
  const std::string dir = test::scratch_dir("startup_pad");
  const test::CommandResult r = train_tiny(dir, "data.dir=" + sample_shards(dir) + " model.pad_id=7");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("pad_id"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/runs")) << r.output;
}

TEST(StartupErrors, MissingPrepareConfigLeavesNoRunFolder) {
  const std::string dir = test::scratch_dir("startup_no_prepare");
  const test::CommandResult r = train_tiny(dir, "data.prepare=" + dir + "/nope.yaml");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(dir + "/nope.yaml: cannot open config file"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/runs")) << r.output;
}

TEST(StartupErrors, MissingDataLeavesNoRunFolder) {
  const std::string dir = test::scratch_dir("startup_no_data");
  const test::CommandResult r = train_tiny(dir, "data.dir=" + dir + "/absent");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find(dir + "/absent"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/runs")) << r.output;
}

TEST(StartupErrors, EmptyCorpusLeavesNoRunFolder) {
  const std::string dir = test::scratch_dir("startup_empty_corpus");
  fs::create_directories(dir + "/songs");
  files::write_atomic(dir + "/prepare.yaml", "corpus: {root: songs, include: ['*.mid']}\noutput: {dir: shards}\n");
  const test::CommandResult r = train_tiny(dir, "data.prepare=" + dir + "/prepare.yaml");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("data error: " + dir + "/songs: no MIDI files: nothing under this folder matches "
                          "corpus.include [*.mid]"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir + "/runs")) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/shards")) << r.output;
}

TEST(StartupErrors, EmptyTrainShardIsNamedAndLeavesNoRunFolder) {
  // Shards made elsewhere (here by hand) whose train split holds no item.
  const std::string dir = test::scratch_dir("startup_empty_shard");
  const std::string data = dir + "/data";
  fs::create_directories(data);
  const std::string sample = sample_shards(dir);
  for (const char* f : {"tokenizer.json", "validation.h5", "test.h5"}) fs::copy_file(sample + "/" + f, data + "/" + f);
  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(data + "/tokenizer.json");
  shards::ShardWriter train(data + "/train.h5", "train", shards::ShardVocab{tok.vocab_size(), tok.pad_id(), tok.sha256()}, {});
  train.commit();
  const test::CommandResult r = train_tiny(dir, "data.dir=" + data);
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("the train split of task midi_generator has no items: nothing to train on"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("sampler:"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/runs")) << r.output;
}

// The README's commands (train, evaluate, export) in a checkout laid out like
// a fresh clone (configs/ and data/ side by side, no ../shared), with
// KMIDI_DATA_ROOT set.
TEST(StartupErrors, GeneratorJobWorksWithKmidiDataRootSet) {
  const fs::path clone = test::scratch_dir("startup_clone");
  fs::create_directories(clone / "configs");
  for (const char* f : {"midi_generator.yaml", "midi_generator_tiny.yaml", "prepare_pop909_sample.yaml"}) {
    fs::copy_file(test::source_path(std::string("configs/") + f), clone / "configs" / f);
  }
  fs::create_directory_symlink(test::source_path("data"), clone / "data");
  const std::string env = "KMIDI_DATA_ROOT=" + (clone / "elsewhere").string();
  const std::string config = (clone / "configs/midi_generator.yaml").string();

  const test::CommandResult printed = kmidi("train --config " + config + " --print-config", env);
  ASSERT_EQ(printed.exit_code, 0) << printed.output;
  EXPECT_NE(printed.output.find("prepare: " + (clone / "configs/prepare_pop909_sample.yaml").string() + "\n"),
            std::string::npos)
      << printed.output;

  const std::string tiny = (clone / "configs/midi_generator_tiny.yaml").string();
  const test::CommandResult trained =
      kmidi("train --config " + tiny + " train.max_steps=2 train.eval_every=2 train.checkpoint_every=2", env);
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  EXPECT_TRUE(fs::exists(clone / "runs/data/pop909-sample/train.h5"));  // prepared from data/pop909-sample
  // Logged before the run folder existed, kept in its train.log all the same.
  EXPECT_NE(files::read_all((clone / "runs/midi_generator_tiny/train.log").string()).find("no prepared shards yet"),
            std::string::npos);
  const std::string best = (clone / "runs/midi_generator_tiny/checkpoints/best.ckpt").string();
  EXPECT_TRUE(fs::exists(best));
  const test::CommandResult evaluated =
      kmidi("evaluate --config " + tiny + " --checkpoint " + best + " --split test", env);
  EXPECT_EQ(evaluated.exit_code, 0) << evaluated.output;
  const test::CommandResult exported =
      kmidi("export --config " + tiny + " --out " + (clone / "exports").string(), env);
  EXPECT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_TRUE(fs::exists(clone / "exports/midi_generator_tiny.onnx")) << exported.output;
  EXPECT_FALSE(fs::exists(clone / "elsewhere"));
}

}  // namespace
}  // namespace kmidi::cli
