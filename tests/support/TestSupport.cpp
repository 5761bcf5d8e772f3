#include "tests/support/TestSupport.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace kmidi::test {

namespace fs = std::filesystem;

std::string shared_data(const std::string& relative) { return std::string(KMIDI_SHARED_DATA) + "/" + relative; }

std::string source_path(const std::string& relative) { return std::string(KMIDI_SOURCE_DIR) + "/" + relative; }

namespace {

/// The scratch folders alive in this process, by lifetime.
struct ScratchFolders {
  std::mutex mutex;
  std::vector<std::string> of_test, of_program;
};

ScratchFolders& scratch_folders() {
  static ScratchFolders folders;
  return folders;
}

bool test_running() { return ::testing::UnitTest::GetInstance()->current_test_info() != nullptr; }

/// Removes `dirs` when `passed`, else prints them; then forgets them.
void release(std::vector<std::string>& dirs, bool passed, const char* whose) {
  for (const auto& dir : dirs) {
    std::error_code ignored;
    if (passed) fs::remove_all(dir, ignored);
    else if (fs::exists(dir, ignored)) std::fprintf(stderr, "[ scratch  ] kept %s's folder %s\n", whose, dir.c_str());
  }
  dirs.clear();
}

/// Entries of the temp dir that this process's tests left: names starting
/// with "kmidi" that carry this process id as a separate number.
std::vector<std::string> leftovers_of_this_process() {
  const std::string pid = std::to_string(::getpid());
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::temp_directory_path(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("kmidi", 0) != 0) continue;
    for (size_t at = name.find(pid); at != std::string::npos; at = name.find(pid, at + 1)) {
      const size_t end = at + pid.size();
      const bool alone = !std::isdigit(static_cast<unsigned char>(name[at - 1])) &&
                         (end == name.size() || !std::isdigit(static_cast<unsigned char>(name[end])));
      if (alone) {
        found.push_back(entry.path().string());
        break;
      }
    }
  }
  return found;
}

/// Ends each test's folders with the test.
class ScratchListener : public ::testing::EmptyTestEventListener {
  void OnTestEnd(const ::testing::TestInfo& info) override {
    auto& folders = scratch_folders();
    std::lock_guard<std::mutex> lock(folders.mutex);
    release(folders.of_test, !info.result()->Failed(),
            (std::string(info.test_suite_name()) + "." + info.name()).c_str());
  }
};

/// At the end of the program: the program's folders go the same way, then a
/// passing program must have left nothing of its own in the temp dir.
class LeftoverCheck : public ::testing::Environment {
  void TearDown() override {
    const bool passed = ::testing::UnitTest::GetInstance()->Passed();
    {
      auto& folders = scratch_folders();
      std::lock_guard<std::mutex> lock(folders.mutex);
      release(folders.of_test, passed, "a test outside gtest's events");
      release(folders.of_program, passed, "the test program");
    }
    std::error_code ignored;
    fs::remove(scratch_root(), ignored);  // only when empty
    if (!passed) return;
    std::string listed;
    for (const auto& path : leftovers_of_this_process()) listed += "\n  " + path;
    if (!listed.empty()) {
      ADD_FAILURE() << "the tests left folders in the temp dir; make them with test::scratch_dir(), which removes "
                       "them:" << listed;
    }
  }
};

[[maybe_unused]] const bool kScratchHooks = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new ScratchListener);
  ::testing::AddGlobalTestEnvironment(new LeftoverCheck);
  return true;
}();

}  // namespace

std::string scratch_root() {
  return (fs::temp_directory_path() / ("kmidi_test_" + std::to_string(::getpid()))).string();
}

std::string scratch_dir(const std::string& name, ScratchLifetime lifetime) {
  if (name.empty() || fs::path(name).is_absolute() || name.find("..") != std::string::npos) {
    throw std::invalid_argument("scratch_dir: expected a plain folder name, got '" + name + "'");
  }
  const fs::path p = fs::path(scratch_root()) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  auto& folders = scratch_folders();
  std::lock_guard<std::mutex> lock(folders.mutex);
  auto& list = lifetime == ScratchLifetime::kTest && test_running() ? folders.of_test : folders.of_program;
  if (std::find(list.begin(), list.end(), p.string()) == list.end()) list.push_back(p.string());
  return p.string();
}

std::string shell_quote(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

CommandResult run(const std::vector<std::string>& argv) {
  std::string command;
  for (const auto& a : argv) command += (command.empty() ? "" : " ") + shell_quote(a);
  return run_shell(command);
}

CommandResult run_shell(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run: " + command);
  CommandResult result;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string python() { return "/usr/bin/python3"; }

}  // namespace kmidi::test
