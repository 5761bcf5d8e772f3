// `kmidi inspect` run as a process: its notes JSON must be the reader's notes
// bit for bit, its summary must describe the same score, and bad files must
// exit with code 3 and one line naming the file and the byte offset.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/Files.h"
#include "core/Strings.h"
#include "datasets/midi/MidiReader.h"
#include "tests/support/TestSupport.h"

namespace kmidi::cli {
namespace {

namespace fs = std::filesystem;

const std::string kData = KMIDI_SHARED_DATA;
const std::string kPop001 = kData + "/pop909/POP909/001/001.mid";
const std::string kControl168 = kData + "/miditok-tests/tests/MIDIs_corrupted/ValueError_Control168.mid";

struct Result {
  int code = -1;
  std::string out, err;
};

std::string quote(const std::string& text) {
  std::string q = "'";
  for (char c : text) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

fs::path scratch(const std::string& name) { return test::scratch_dir("cli_inspect_" + name); }

Result run(const std::string& args) {
  const fs::path err = scratch("stderr") / "err.txt";
  const std::string command = quote(KMIDI_CLI) + " " + args + " 2>" + quote(err.string());
  FILE* pipe = ::popen(command.c_str(), "r");
  Result r;
  if (!pipe) return r;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) r.out.append(buffer, n);
  const int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = files::read_all(err.string());
  return r;
}

TEST(InspectCommand, NotesJsonIsTheReadersNotesExactly) {
  const Result r = run("inspect --notes-json " + quote(kPop001));
  ASSERT_EQ(r.code, 0) << r.err;
  const midi::Score score = midi::read_midi_file(kPop001);
  const std::vector<std::string> lines = strings::split(strings::trim(r.out), '\n');
  ASSERT_EQ(lines.size(), score.notes.size());
  const std::set<std::string> keys = {"pitch", "velocity", "channel", "program", "track",
                                      "start_tick", "end_tick", "start_s", "end_s"};
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json j = nlohmann::json::parse(lines[i]);
    std::set<std::string> seen;
    for (const auto& item : j.items()) seen.insert(item.key());
    ASSERT_EQ(seen, keys);
    const midi::Note& n = score.notes[i];
    ASSERT_EQ(j["pitch"].get<int>(), n.pitch);
    ASSERT_EQ(j["velocity"].get<int>(), n.velocity);
    ASSERT_EQ(j["channel"].get<int>(), n.channel);
    ASSERT_EQ(j["program"].get<int>(), n.program);
    ASSERT_EQ(j["track"].get<int>(), n.track);
    ASSERT_EQ(j["start_tick"].get<int64_t>(), n.start_tick);
    ASSERT_EQ(j["end_tick"].get<int64_t>(), n.end_tick);
    ASSERT_EQ(j["start_s"].get<double>(), n.start_s);  // 17 significant digits: exact
    ASSERT_EQ(j["end_s"].get<double>(), n.end_s);
  }
}

TEST(InspectCommand, SummaryDescribesTheScore) {
  const Result r = run("inspect " + quote(kPop001));
  ASSERT_EQ(r.code, 0) << r.err;
  const midi::Score s = midi::read_midi_file(kPop001);
  for (const std::string& expected :
       {std::string("format: 1\n"), std::string("division: 480 ticks per quarter note\n"), std::string("tracks: 4\n"),
        std::string("  1: \"MELODY\" (264 notes)\n"), std::string("tempo changes: 1 (first 90.000 bpm at tick 0)\n"),
        std::string("time signatures: 1 (first 2/4 at tick 0)\n"),
        "notes: " + std::to_string(s.notes.size()) + ", pitch range 39..87, drum notes 0\n",
        std::string("duration: 196.004 s (3:16), 141123 ticks\n"), std::string("repairs: 0\n")}) {
    EXPECT_NE(r.out.find(expected), std::string::npos) << "missing: " << expected << "\n" << r.out;
  }
}

TEST(InspectCommand, MalformedFileExitsThreeWithOneLineNamingFileAndOffset) {
  const Result r = run("inspect " + quote(kControl168));
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "kmidi: data error: " + kControl168 + ": byte 6042: data byte 0xA8 > 127 in control change (track 3)\n");

  const Result lenient = run("inspect --lenient " + quote(kControl168));
  EXPECT_EQ(lenient.code, 0) << lenient.err;
  EXPECT_NE(lenient.out.find("repairs: 1\n  warning: byte 6042: data byte 0xA8 > 127 in control change (track 3); clamped to 127"),
            std::string::npos)
      << lenient.out;

  const Result missing = run("inspect /nonexistent/x.mid");
  EXPECT_EQ(missing.code, 3);
  EXPECT_NE(missing.err.find("/nonexistent/x.mid: cannot open"), std::string::npos) << missing.err;

  const Result usage = run("inspect");
  EXPECT_EQ(usage.code, 2);
}

TEST(InspectCommand, FileNamesWithSpacesQuotesAndNonAscii) {
  const fs::path dir = scratch("names");
  const std::string name = (dir / "a \"b\" 'c' – é.mid").string();
  fs::copy_file(kPop001, name);
  const Result r = run("inspect --notes-json " + quote(name));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(strings::split(strings::trim(r.out), '\n').size(), midi::read_midi_file(kPop001).notes.size());
}

}  // namespace
}  // namespace kmidi::cli
