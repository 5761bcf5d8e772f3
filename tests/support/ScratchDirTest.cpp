// test::scratch_dir() removes a passing test's folder, keeps and prints a
// failing test's, and a test program that leaves a kmidi folder of its own in
// the temp dir fails. Each case runs this binary again as a child on one of
// the DISABLED_ tests below, as ctest runs every test.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/TestSupport.h"

namespace kmidi::test {
namespace {

namespace fs = std::filesystem;

// ---- children -------------------------------------------------------------------

void announce(const std::string& what, const std::string& path) { std::printf("%s=%s\n", what.c_str(), path.c_str()); }

TEST(ScratchChild, DISABLED_Passes) {
  const std::string dir = scratch_dir("passing");
  std::ofstream(dir + "/file.txt") << "data";
  announce("TEST_DIR", dir);
  const std::string shared = scratch_dir("shared_cache", ScratchLifetime::kProgram);
  announce("PROGRAM_DIR", shared);
}

TEST(ScratchChild, DISABLED_Fails) {
  const std::string dir = scratch_dir("failing");
  announce("TEST_DIR", dir);
  ADD_FAILURE() << "this child fails on purpose";
}

TEST(ScratchChild, DISABLED_LeavesAFolderOfItsOwn) {
  const fs::path leak = fs::temp_directory_path() / ("kmidi_leak_" + std::to_string(::getpid()));
  fs::create_directories(leak);
  announce("LEAK", leak.string());
}

// ---- the cases ----------------------------------------------------------------------

struct Child {
  int exit_code = -1;
  std::string output;
  /// The value printed as "KEY=value", or "".
  std::string value(const std::string& key) const {
    const size_t at = output.find(key + "=");
    if (at == std::string::npos) return {};
    const size_t start = at + key.size() + 1;
    return output.substr(start, output.find('\n', start) - start);
  }
};

Child run_child(const std::string& test_name) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const CommandResult r = run_shell(shell_quote(self) + " --gtest_also_run_disabled_tests --gtest_filter=ScratchChild." +
                                    test_name + " 2>&1");
  return {r.exit_code, r.output};
}

TEST(ScratchDir, PassingTestsFoldersAreRemoved) {
  const Child child = run_child("DISABLED_Passes");
  EXPECT_EQ(child.exit_code, 0) << child.output;
  const std::string test_dir = child.value("TEST_DIR"), program_dir = child.value("PROGRAM_DIR");
  ASSERT_FALSE(test_dir.empty()) << child.output;
  ASSERT_FALSE(program_dir.empty()) << child.output;
  EXPECT_FALSE(fs::exists(test_dir)) << test_dir;
  EXPECT_FALSE(fs::exists(program_dir)) << program_dir;
  EXPECT_FALSE(fs::exists(fs::path(test_dir).parent_path())) << "the process's scratch root stays behind";
}

TEST(ScratchDir, FailingTestsFolderIsKeptAndPrinted) {
  const Child child = run_child("DISABLED_Fails");
  EXPECT_NE(child.exit_code, 0) << child.output;
  const std::string dir = child.value("TEST_DIR");
  ASSERT_FALSE(dir.empty()) << child.output;
  EXPECT_TRUE(fs::exists(dir)) << child.output;
  EXPECT_NE(child.output.find("kept ScratchChild.DISABLED_Fails's folder " + dir), std::string::npos) << child.output;
  fs::remove_all(fs::path(dir).parent_path());
}

TEST(ScratchDir, AProgramThatLeavesAFolderFails) {
  const Child child = run_child("DISABLED_LeavesAFolderOfItsOwn");
  const std::string leak = child.value("LEAK");
  ASSERT_FALSE(leak.empty()) << child.output;
  EXPECT_NE(child.exit_code, 0) << child.output;
  EXPECT_NE(child.output.find("the tests left folders in the temp dir"), std::string::npos) << child.output;
  EXPECT_NE(child.output.find(leak), std::string::npos) << child.output;
  fs::remove_all(leak);
}

TEST(ScratchDir, RefusesNamesThatLeaveTheRoot) {
  EXPECT_THROW(scratch_dir("/etc"), std::invalid_argument);
  EXPECT_THROW(scratch_dir("../escape"), std::invalid_argument);
  EXPECT_THROW(scratch_dir(""), std::invalid_argument);
}

}  // namespace
}  // namespace kmidi::test
