// `kmidi humanize` as a user runs it: train the tiny groove job, humanize a
// quantized MMA drum part, and read the result back with mido.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

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

struct MidoNote {
  int channel, pitch;
  int64_t tick;
  int velocity;
};

/// tests/reference/humanize_check.py's reading of `path`: ticks per quarter and notes.
std::pair<int, std::vector<MidoNote>> mido_notes(const std::string& path) {
  const auto ref = test::run({test::python(), test::source_path("tests/reference/humanize_check.py"), path});
  EXPECT_EQ(ref.exit_code, 0) << path;
  std::istringstream lines(ref.output);
  std::string line;
  std::getline(lines, line);
  const int tpq = nlohmann::json::parse(line)["ticks_per_quarter"].get<int>();
  std::vector<MidoNote> notes;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    notes.push_back({j["channel"].get<int>(), j["pitch"].get<int>(), j["tick"].get<int64_t>(), j["velocity"].get<int>()});
  }
  return {tpq, notes};
}

/// Kick, snare, hi-hat, tom, cymbal pitches of the nine groove classes.
bool mapped_drum(int pitch) {
  static const std::vector<int> pitches = {35, 36, 27, 28, 31, 32, 33, 34, 37, 38, 39, 40, 56, 65, 66, 75, 85, 22, 42, 44,
                                           54, 68, 69, 70, 71, 73, 78, 80, 26, 46, 67, 72, 74, 79, 81, 29, 41, 43, 45, 61,
                                           64, 84, 47, 48, 60, 63, 77, 86, 87, 30, 50, 62, 76, 83, 49, 52, 55, 57, 58, 51,
                                           53, 59, 82};
  return std::find(pitches.begin(), pitches.end(), pitch) != pitches.end();
}

TEST(HumanizeCommand, HumanizesAQuantizedDrumPartWithinHalfAStep) {
  const std::string dir = test::scratch_dir("cli_humanize");
  const Result train = kmidi("train --config " + test::shell_quote(test::source_path("configs/groove_tiny.yaml")) +
                             " data_root=" + test::shell_quote(KMIDI_SHARED_DATA) + " run.output_dir=" + dir + "/runs");
  ASSERT_EQ(train.code, 0) << train.output;
  const std::string ckpt = dir + "/runs/groove-tiny/checkpoints/step-0000000012.ckpt";
  ASSERT_TRUE(fs::exists(ckpt));

  // grooves.mid: 1,187 drum notes; rndset/tempo.mid: 31 tempo changes.
  for (const char* name : {"misc/grooves.mid", "rndset/tempo.mid"}) {
    SCOPED_TRACE(name);
    const std::string input = test::shared_data(std::string("mma-examples/examples/") + name);
    const std::string output = dir + "/out dir/" + fs::path(name).stem().string() + " human.mid";
    fs::create_directories(dir + "/out dir");
    const Result r = kmidi("humanize " + test::shell_quote(input) + " --checkpoint " + ckpt + " --out " +
                               test::shell_quote(output),
                           false);
    ASSERT_EQ(r.code, 0) << r.output;
    const auto summary = nlohmann::json::parse(r.output);
    EXPECT_EQ(summary["step"].get<int64_t>(), 12);

    const auto [tpq_in, before] = mido_notes(input);
    const auto [tpq_out, after] = mido_notes(output);
    EXPECT_EQ(tpq_in, tpq_out);
    ASSERT_EQ(before.size(), after.size());  // every note kept
    EXPECT_EQ(summary["notes"].get<size_t>(), before.size());
    const int64_t step_ticks = tpq_in / 4;
    int64_t humanized = 0, moved = 0, revoiced = 0;
    for (size_t i = 0; i < before.size(); ++i) {
      const MidoNote &a = before[i], &b = after[i];
      ASSERT_EQ(a.channel, b.channel) << i;
      ASSERT_EQ(a.pitch, b.pitch) << i;
      if (a.channel != 9 || !mapped_drum(a.pitch)) {
        EXPECT_EQ(a.tick, b.tick) << i;  // other parts untouched
        EXPECT_EQ(a.velocity, b.velocity) << i;
        continue;
      }
      ++humanized;
      const int64_t grid = (a.tick * 4 + tpq_in / 2) / tpq_in * step_ticks;  // nearest 16th (MMA: tpq 192)
      EXPECT_LE(std::abs(b.tick - grid), step_ticks / 2 + 1) << "note " << i << " at tick " << a.tick;
      EXPECT_GE(b.velocity, 1);
      EXPECT_LE(b.velocity, 127);
      moved += b.tick != a.tick;
      revoiced += b.velocity != a.velocity;
    }
    EXPECT_EQ(summary["humanized"].get<int64_t>(), humanized);
    EXPECT_GT(humanized, 200);
    EXPECT_GT(moved, humanized / 2);
    EXPECT_GT(revoiced, humanized / 2);
    // kmidi reads its own output too.
    const Result inspect = kmidi("inspect " + test::shell_quote(output));
    EXPECT_EQ(inspect.code, 0) << inspect.output;
  }

  // In a named drummer's feel (configs/groove_tiny.yaml lists drummer1 and
  // drummer7): same notes, other timing than "any player".
  const std::string input = test::shared_data("mma-examples/examples/misc/grooves.mid");
  const Result as_player = kmidi("humanize " + test::shell_quote(input) + " --checkpoint " + ckpt +
                                     " --player drummer7 --out " + dir + "/drummer7.mid",
                                 false);
  ASSERT_EQ(as_player.code, 0) << as_player.output;
  EXPECT_EQ(nlohmann::json::parse(as_player.output)["player"], "drummer7");
  const auto any = mido_notes(dir + "/out dir/grooves human.mid").second;
  const auto played = mido_notes(dir + "/drummer7.mid").second;
  ASSERT_EQ(any.size(), played.size());
  size_t retimed = 0;
  for (size_t i = 0; i < any.size(); ++i) retimed += any[i].tick != played[i].tick;
  EXPECT_GT(retimed, 0u);
  const Result unknown = kmidi("humanize " + test::shell_quote(input) + " --checkpoint " + ckpt +
                               " --player drummer3 --out " + dir + "/drummer3.mid");
  EXPECT_EQ(unknown.code, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("player 'drummer3' is not one the model was trained on (known: drummer1, drummer7)"),
            std::string::npos)
      << unknown.output;
  EXPECT_FALSE(fs::exists(dir + "/drummer3.mid"));
}

TEST(HumanizeCommand, RefusesAMissingOrUnreadableCheckpoint) {
  const std::string input = test::shared_data("mma-examples/examples/misc/grooves.mid");
  const Result missing = kmidi("humanize " + test::shell_quote(input) + " --out /tmp/x.mid");
  EXPECT_EQ(missing.code, 2) << missing.output;
  EXPECT_NE(missing.output.find("--checkpoint is required"), std::string::npos) << missing.output;
  const std::string dir = test::scratch_dir("cli_humanize_bad");
  const std::string bogus = dir + "/bogus.ckpt";
  FILE* f = std::fopen(bogus.c_str(), "wb");
  std::fputs("not a checkpoint", f);
  std::fclose(f);
  const Result bad = kmidi("humanize " + test::shell_quote(input) + " --checkpoint " + bogus + " --out " + dir + "/o.mid");
  EXPECT_EQ(bad.code, 3) << bad.output;
  EXPECT_NE(bad.output.find(bogus), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir + "/o.mid"));
}

}  // namespace
}  // namespace kmidi::cli
