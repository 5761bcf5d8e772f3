// `kmidi generate` as a user runs it on a tiny trained generator: a batch of
// pieces in a folder, each with its documented seed and no skipped token,
// guidance on the command line, and usage errors that write nothing.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <mutex>
#include <set>
#include <string>

#include "core/Files.h"
#include "datasets/midi/MidiReader.h"
#include "tests/support/TestSupport.h"

namespace kmidi::cli {
namespace {

namespace fs = std::filesystem;

struct Result {
  int code = -1;
  std::string output;
};

Result kmidi(const std::string& args, bool with_stderr = true) {
  const std::string command = test::shell_quote(KMIDI_CLI) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  const test::CommandResult r = test::run_shell(command);
  return {r.exit_code, r.output};
}

/// A generator trained for 4 steps on the repo's POP909 sample, once per process.
const std::string& tiny_checkpoint() {
  static std::string path;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string dir = test::scratch_dir("cli_generate_train", test::ScratchLifetime::kProgram);
    const Result prepare = kmidi("prepare --config " + test::source_path("configs/prepare_pop909_sample.yaml") +
                                 " output.dir=" + dir + "/data");
    ASSERT_EQ(prepare.code, 0) << prepare.output;
    const Result train = kmidi("train --config " + test::source_path("configs/midi_generator_tiny.yaml") + " data.dir=" +
                               dir + "/data run.output_dir=" + dir + " train.max_steps=4 train.eval_every=0");
    ASSERT_EQ(train.code, 0) << train.output;
    for (const auto& e : fs::directory_iterator(dir + "/midi_generator_tiny/checkpoints")) {
      if (e.path().filename().string().rfind("step-", 0) == 0) path = std::max(path, e.path().string());
    }
  });
  return path;
}

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

TEST(GenerateCommand, WritesCountPiecesWithSeedsCountedFromTheFirstAndNoSkippedTokens) {
  const std::string ckpt = tiny_checkpoint();
  ASSERT_FALSE(ckpt.empty());
  const std::string work = test::scratch_dir("cli_generate_batch");
  const std::string out = work + "/batch";
  const Result r = kmidi("generate --checkpoint " + ckpt + " --emotion 0.8,0.8 --count 12 --out-dir " + out +
                             " --seed 40 --max-tokens 200",
                         false);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto summary = nlohmann::json::parse(r.output);
  EXPECT_EQ(summary.at("count"), 12);
  EXPECT_EQ(summary.at("skipped_tokens"), 0);
  ASSERT_EQ(summary.at("pieces").size(), 12u);
  std::set<std::string> expected, contents;
  size_t with_notes = 0;
  for (int i = 0; i < 12; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "%03d.mid", i);
    expected.insert(name);
    const auto& piece = summary.at("pieces")[static_cast<size_t>(i)];
    EXPECT_EQ(piece.at("out"), out + "/" + name);
    EXPECT_EQ(piece.at("seed"), 40 + i);
    EXPECT_EQ(piece.at("skipped_tokens"), 0) << name;  // the grammar mask at work
    if (piece.at("ended_with_eos").get<bool>()) EXPECT_EQ(piece.at("incomplete_notes"), 0) << name;
    // kmidi's strict reader reads every file with the notes the summary counts.
    const midi::Score score = midi::read_midi_file(out + "/" + name);
    EXPECT_EQ(static_cast<int64_t>(score.notes.size()), piece.at("notes").get<int64_t>()) << name;
    if (score.notes.empty()) continue;  // a 4-step model often ends at once: BOS EOS
    ++with_notes;
    contents.insert(files::read_all(out + "/" + name));
  }
  EXPECT_EQ(names_in(out), expected);  // and no temporary file left behind
  EXPECT_GE(with_notes, 3u);
  EXPECT_EQ(contents.size(), with_notes) << "each piece its own seed";

  // Piece 7 is what a single generate with seed 40 + 7 writes.
  const Result single = kmidi("generate --checkpoint " + ckpt + " --emotion 0.8,0.8 --seed 47 --max-tokens 200 --out " +
                                  work + "/single.mid",
                              false);
  ASSERT_EQ(single.code, 0) << single.output;
  EXPECT_EQ(nlohmann::json::parse(single.output).at("skipped_tokens"), 0);
  EXPECT_EQ(files::read_all(work + "/single.mid"), files::read_all(out + "/007.mid"));
}

TEST(GenerateCommand, NamesWidenPastAThousandPieces) {
  const std::string ckpt = tiny_checkpoint();
  ASSERT_FALSE(ckpt.empty());
  const std::string out = test::scratch_dir("cli_generate_many") + "/many";
  const Result r = kmidi("generate --checkpoint " + ckpt + " --count 1001 --max-tokens 1 --out-dir " + out, false);
  ASSERT_EQ(r.code, 0) << r.output.substr(0, 2000);
  const std::set<std::string> names = names_in(out);
  EXPECT_EQ(names.size(), 1001u);
  EXPECT_EQ(*names.begin(), "0000.mid");
  EXPECT_EQ(*names.rbegin(), "1000.mid");
}

TEST(GenerateCommand, GuidanceOneIsTheDefaultAndOtherScalesDecodeCleanly) {
  const std::string ckpt = tiny_checkpoint();
  ASSERT_FALSE(ckpt.empty());
  const std::string work = test::scratch_dir("cli_generate_guidance");
  const std::string base = "generate --checkpoint " + ckpt + " --emotion -0.8,0.6 --seed 9 --max-tokens 150 --out ";
  ASSERT_EQ(kmidi(base + work + "/default.mid", false).code, 0);
  ASSERT_EQ(kmidi(base + work + "/g1.mid --guidance 1", false).code, 0);
  EXPECT_EQ(files::read_all(work + "/default.mid"), files::read_all(work + "/g1.mid"));
  for (const char* g : {"0", "2.5"}) {
    const Result r = kmidi(base + work + "/g" + g + ".mid --guidance " + g, false);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_EQ(nlohmann::json::parse(r.output).at("skipped_tokens"), 0) << g;
  }
}

TEST(GenerateCommand, BadCombinationsAreUsageErrorsThatWriteNothing) {
  const std::string ckpt = tiny_checkpoint();
  ASSERT_FALSE(ckpt.empty());
  const std::string dir = test::scratch_dir("cli_generate_bad");
  files::write_atomic(dir + "/a_file", "x");
  const std::string gen = "generate --checkpoint " + ckpt + " ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--count 3 --out " + dir + "/x.mid", "--out writes one piece; use --out-dir DIR for --count 3"},
      {"--out " + dir + "/x.mid --out-dir " + dir + "/d", "give --out FILE (one piece) or --out-dir DIR (--count pieces), not both"},
      {"--count 2", "not neither"},
      {"--count 0 --out-dir " + dir + "/d", "--count must be at least 1, got 0"},
      {"--guidance -1 --out-dir " + dir + "/d", "guidance must be a finite number >= 0"},
      {"--out-dir " + dir + "/a_file", "--out-dir " + dir + "/a_file exists and is not a directory"},
      {"--emotion 2,0 --count 2 --out-dir " + dir + "/d", "--emotion: valence must be in [-1, 1]"},
  };
  for (const auto& [args, message] : cases) {
    SCOPED_TRACE(args);
    const Result r = kmidi(gen + args);
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
  }
  EXPECT_EQ(names_in(dir), std::set<std::string>{"a_file"});
}

}  // namespace
}  // namespace kmidi::cli
