// `kmidi fetch-data` as a user runs it, against fault_server.py on 127.0.0.1:
// exit codes, messages naming the URL, the licence printed first, and a run
// killed between extraction and rename leaving no data set behind.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "core/Files.h"
#include "tests/datasets/fetch/FaultServer.h"
#include "tests/support/TestSupport.h"

namespace kmidi::cli {
namespace {
namespace fs = std::filesystem;

class FetchDataCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("cli_fetch_data");
    files::ensure_dir(dir_ + "/served");
    zip_ = test::make_test_archive(dir_ + "/served/set.zip", dir_ + "/src", "zip", "set", 20000);
    server_ = std::make_unique<test::FaultServer>(dir_ + "/served", dir_);
  }

  /// A catalogue with one entry, `demo`, served in `mode`.
  std::string catalogue(const std::string& mode, const std::string& sha256 = "") const {
    std::string text = "datasets:\n  demo:\n    title: Demo Set\n    url: " + server_->url(mode, "set.zip") +
                       "\n    licence: CC BY-NC-SA 4.0\n    non_commercial: true\n"
                       "    notice: Demo notice, research only.\n    dest: demo/set\n";
    if (!sha256.empty()) text += "    sha256: " + sha256 + "\n    sha256_source: the test\n";
    files::write_atomic(dir_ + "/catalogue.yaml", text);
    return dir_ + "/catalogue.yaml";
  }

  test::CommandResult kmidi(const std::string& args, const std::string& env = "") const {
    return test::run_shell(env + " " + test::shell_quote(KMIDI_CLI) + " fetch-data " + args + " --to " +
                           test::shell_quote(dir_ + "/to") + " --no-progress --retry-wait 0.1 2>&1");
  }

  std::string dir_;
  test::TestArchive zip_;
  std::unique_ptr<test::FaultServer> server_;
};

TEST_F(FetchDataCommand, PrintsTheLicenceBeforeFetching) {
  const test::CommandResult r = kmidi("demo --catalogue " + catalogue("ok", zip_.sha256));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t licence = r.output.find("Demo Set (demo): licence CC BY-NC-SA 4.0");
  const size_t warning = r.output.find("NON-COMMERCIAL USE ONLY");
  const size_t notice = r.output.find("Demo notice, research only.");
  const size_t fetched = r.output.find("fetched " + dir_ + "/to/demo/set: 2 files, sha256 " + zip_.sha256 +
                                       " (matches the catalogue)");
  ASSERT_NE(fetched, std::string::npos) << r.output;
  EXPECT_LT(licence, warning) << r.output;
  EXPECT_LT(warning, notice) << r.output;
  EXPECT_LT(notice, fetched) << r.output;
  EXPECT_EQ(files::read_all(dir_ + "/to/demo/set/song.mid"), files::read_all(dir_ + "/src/set/song.mid"));
  const test::CommandResult again = kmidi("demo --catalogue " + catalogue("ok", zip_.sha256));
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("already present: " + dir_ + "/to/demo/set"), std::string::npos) << again.output;
}

TEST_F(FetchDataCommand, ExitCodesFollowTheReadme) {
  const std::string missing = server_->url("status-404", "set.zip");
  const test::CommandResult not_found = kmidi(missing);
  EXPECT_EQ(not_found.exit_code, 3) << not_found.output;
  EXPECT_NE(not_found.output.find("kmidi: data error: " + missing + ": HTTP 404 Not Found"), std::string::npos)
      << not_found.output;
  EXPECT_NE(not_found.output.find("licence unknown"), std::string::npos) << not_found.output;

  const test::CommandResult wrong = kmidi("demo --catalogue " + catalogue("wrong", zip_.sha256));
  EXPECT_EQ(wrong.exit_code, 4) << wrong.output;
  EXPECT_NE(wrong.output.find("kmidi: check failed: " + server_->url("wrong", "set.zip") + ": sha256 "),
            std::string::npos)
      << wrong.output;

  const test::CommandResult unknown = kmidi("demoo --catalogue " + catalogue("ok"));
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("'demoo' is neither an http(s) URL nor a data set of"), std::string::npos)
      << unknown.output;
  EXPECT_NE(unknown.output.find("(demo)"), std::string::npos) << unknown.output;

  const test::CommandResult bad_option = kmidi("demo --retries -1 --catalogue " + catalogue("ok"));
  EXPECT_EQ(bad_option.exit_code, 2) << bad_option.output;
  EXPECT_NE(bad_option.output.find("--retries: expected >= 0, got -1"), std::string::npos) << bad_option.output;
  EXPECT_FALSE(fs::exists(dir_ + "/to/demo/set"));
}

TEST_F(FetchDataCommand, StallEndsWithinTheTimeoutAndTheNextRunResumes) {
  const std::string url = server_->url("stall-once", "set.zip");
  const auto t0 = std::chrono::steady_clock::now();
  const test::CommandResult stalled = kmidi(url + " --low-speed-timeout 2 --retries 0");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(stalled.exit_code, 3) << stalled.output;
  EXPECT_LT(seconds, 2 + 5);
  EXPECT_NE(stalled.output.find(url + ": timed out"), std::string::npos) << stalled.output;
  EXPECT_FALSE(fs::exists(dir_ + "/to/set"));

  const test::CommandResult resumed = kmidi(url + " --low-speed-timeout 2 --retries 0");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed at byte " + std::to_string(zip_.bytes / 2)), std::string::npos)
      << resumed.output;
  EXPECT_EQ(files::read_all(dir_ + "/to/set/song.mid"), files::read_all(dir_ + "/src/set/song.mid"));
}

TEST_F(FetchDataCommand, KilledBeforeTheRenameLeavesNoDataSet) {
  const std::string url = server_->url("ok", "set.zip");
  const test::CommandResult killed = kmidi(url, "KMIDI_FAULT=fetch_before_rename");
  EXPECT_EQ(killed.exit_code, 128 + 9) << killed.output;
  EXPECT_FALSE(fs::exists(dir_ + "/to/set"));
  int staging = 0;
  for (const auto& d : fs::directory_iterator(dir_ + "/to")) staging += d.path().filename().string().rfind(".set.fetching-", 0) == 0;
  EXPECT_EQ(staging, 1);  // what the killed run left

  const test::CommandResult again = kmidi(url);
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(files::read_all(dir_ + "/to/set/song.mid"), files::read_all(dir_ + "/src/set/song.mid"));
  staging = 0;
  for (const auto& d : fs::directory_iterator(dir_ + "/to")) staging += d.path().filename().string().rfind(".set.fetching-", 0) == 0;
  EXPECT_EQ(staging, 0);
}

}  // namespace
}  // namespace kmidi::cli
