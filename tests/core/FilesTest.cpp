#include "core/Files.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/Errors.h"
#include "core/Hash.h"
#include "tests/support/TestSupport.h"

namespace kmidi::files {
namespace {

namespace fs = std::filesystem;

fs::path scratch(const std::string& name) { return test::scratch_dir("files_" + name); }

TEST(Files, AtomicWriteReplacesContent) {
  const fs::path dir = scratch("replace");
  const std::string target = (dir / "a.bin").string();
  write_atomic(target, "old");
  write_atomic(target, "new content");
  EXPECT_EQ(read_all(target), "new content");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(Files, UncommittedWriteLeavesTargetAndNoTemporary) {
  const fs::path dir = scratch("abandon");
  const std::string target = (dir / "a.bin").string();
  write_atomic(target, "good");
  {
    AtomicFile f(target);
    f.write("half of a new fi");
    // destroyed without commit, as when an exception unwinds
  }
  EXPECT_EQ(read_all(target), "good");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(Files, KillDuringWriteKeepsPreviousFile) {
  const fs::path dir = scratch("kill");
  const std::string target = (dir / "ckpt.bin").string();
  write_atomic(target, "previous good checkpoint");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("KMIDI_FAULT", "atomic_write:ckpt.bin", 1);
    AtomicFile f(target);
    std::string big(3 << 20, 'x');  // several buffer flushes: dies after the first
    f.write(big);
    f.commit();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_EQ(read_all(target), "previous good checkpoint");
}

TEST(Files, ReadMissingFileNamesIt) {
  try {
    read_all("/nonexistent/file.bin");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/file.bin"), std::string::npos);
  }
}

TEST(Hash, Sha256KnownVectors) {
  // FIPS 180-2 test vectors.
  EXPECT_EQ(hash::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hash::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const fs::path dir = scratch("hash");
  write_atomic((dir / "f").string(), "abc");
  EXPECT_EQ(hash::sha256_file((dir / "f").string()), hash::sha256_hex("abc"));
}

}  // namespace
}  // namespace kmidi::files
