// Globs and corpus folder listing.

#include "datasets/corpus/FileList.h"

#include <gtest/gtest.h>

#include <filesystem>

#include <fstream>

#include "core/Errors.h"
#include "tests/support/TestSupport.h"

namespace kmidi::corpus {
namespace {

namespace fs = std::filesystem;

TEST(FileList, GlobRules) {
  EXPECT_TRUE(glob_match("**/*.mid", "a.mid"));
  EXPECT_TRUE(glob_match("**/*.mid", "x/y/A.MID"));
  EXPECT_FALSE(glob_match("**/*.mid", "x/y/a.midi"));
  EXPECT_TRUE(glob_match("*.mid", "song 1 (live).mid"));
  EXPECT_FALSE(glob_match("*.mid", "x/a.mid"));
  EXPECT_TRUE(glob_match("*/*.mid", "001/001.mid"));
  EXPECT_FALSE(glob_match("*/*.mid", "001/versions/001-v1.mid"));
  EXPECT_TRUE(glob_match("a/**/b/*.mid", "a/b/c.mid"));
  EXPECT_TRUE(glob_match("a/**/b/*.mid", "a/x/y/b/c.mid"));
  EXPECT_FALSE(glob_match("*.mid", "._a.mid"));  // macOS resource forks are not MIDI
  EXPECT_TRUE(glob_match(".*.mid", "._a.mid"));
  EXPECT_TRUE(glob_match("[ab]?.kar", "b1.kar"));
}

TEST(FileList, ListsMatchingFilesSorted) {
  const fs::path root = fs::path(test::scratch_dir("list"));
  for (const char* f : {"b.mid", "a.MID", "sub/c.midi", "sub/deep/d.kar", "sub/notes.txt", "skip/e.mid", "._f.mid"}) {
    fs::create_directories((root / f).parent_path());
    std::ofstream(root / f) << "x";
  }
  EXPECT_EQ(list_files(root.string(), {"**/*.mid", "**/*.midi", "**/*.kar"}, {"skip/**"}),
            (std::vector<std::string>{"a.MID", "b.mid", "sub/c.midi", "sub/deep/d.kar"}));
  EXPECT_EQ(list_files(root.string(), {"*.mid"}, {}), (std::vector<std::string>{"a.MID", "b.mid"}));
  try {
    list_files((root / "nope").string(), {"*"}, {});
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("nope: not a folder (corpus.root)"), std::string::npos);
  }
}

TEST(FileList, Pop909MainArrangements) {
  const auto files = list_files(test::shared_data("pop909/POP909"), {"*/*.mid"}, {});
  ASSERT_EQ(files.size(), 909u);
  EXPECT_EQ(files.front(), "001/001.mid");
  EXPECT_EQ(files.back(), "909/909.mid");
}

}  // namespace
}  // namespace kmidi::corpus
