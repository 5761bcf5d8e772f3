// kmidi_fetch against a local fault server (fault_server.py on 127.0.0.1):
// every fault ends in a clear error naming the URL or in a correct resume,
// within the configured timeout + 5 s, and never leaves a data set folder
// under its final name unless it is complete and verified.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "core/Config.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/fetch/Catalogue.h"
#include "datasets/fetch/Fetch.h"
#include "tests/datasets/fetch/FaultServer.h"
#include "tests/support/TestSupport.h"

namespace kmidi::fetch {
namespace {
namespace fs = std::filesystem;

constexpr int kPayload = 200000;  // bytes of song.mid: the archive is a little larger

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Entries of `dir` whose names start with `prefix` (partial downloads, extraction folders).
int count_prefixed(const fs::path& dir, const std::string& prefix) {
  int n = 0;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator(dir, ec)) n += d.path().filename().string().rfind(prefix, 0) == 0;
  return n;
}

class FetchFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("fetch_faults");
    files::ensure_dir(dir_ + "/served");
    files::ensure_dir(dir_ + "/to");
    zip_ = test::make_test_archive(dir_ + "/served/set.zip", dir_ + "/src", "zip", "set", kPayload);
    server_ = std::make_unique<test::FaultServer>(dir_ + "/served", dir_);
    options_.to_dir = dir_ + "/to";
    options_.download.connect_timeout_s = 2;
    options_.download.low_speed_timeout_s = 2;
    options_.download.retries = 0;
    options_.download.retry_wait_s = 0.1;
    options_.download.progress = false;
  }

  CatalogueEntry entry(const std::string& mode, const std::string& file = "set.zip") const {
    CatalogueEntry e = entry_for_url(server_->url(mode, file));
    e.name = "testset";
    e.dest = "group/testset";
    return e;
  }
  fs::path final_dir() const { return fs::path(dir_) / "to/group/testset"; }
  fs::path partial() const { return fs::path(dir_) / "to/.kmidi-downloads/testset--set.zip.part"; }

  /// The data set is complete: every file equals the one make_archive.py packed.
  void expect_complete() const {
    for (const char* rel : {"song.mid", "labels/label.csv"}) {
      ASSERT_TRUE(fs::exists(final_dir() / rel)) << rel;
      EXPECT_EQ(files::read_all((final_dir() / rel).string()), files::read_all(zip_.source_dir + "/set/" + rel)) << rel;
    }
    EXPECT_EQ(count_prefixed(final_dir().parent_path(), ".testset.fetching-"), 0);
  }
  /// Nothing under the final name, no extraction folder left.
  void expect_absent() const {
    EXPECT_FALSE(fs::exists(final_dir())) << final_dir();
    EXPECT_EQ(count_prefixed(final_dir().parent_path(), ".testset.fetching-"), 0);
  }

  std::string dir_;
  test::TestArchive zip_;
  std::unique_ptr<test::FaultServer> server_;
  FetchOptions options_;
};

TEST_F(FetchFaults, ZipIsExtractedAndItsDigestRecorded) {
  const FetchResult r = fetch_dataset(entry("ok"), options_);
  expect_complete();
  EXPECT_EQ(r.sha256, zip_.sha256);
  EXPECT_EQ(r.download.bytes, zip_.bytes);
  EXPECT_EQ(r.digest_checked_against, "");
  const std::string lock = files::read_all(lock_path(entry("ok"), options_.to_dir));
  EXPECT_NE(lock.find("sha256: " + zip_.sha256), std::string::npos) << lock;
  EXPECT_FALSE(fs::exists(partial()));
  // A second fetch finds it and downloads nothing.
  const size_t served = server_->requests().size();
  EXPECT_TRUE(fetch_dataset(entry("ok"), options_).already_present);
  EXPECT_EQ(server_->requests().size(), served);
}

TEST_F(FetchFaults, TarGzIsExtracted) {
  const test::TestArchive tgz =
      test::make_test_archive(dir_ + "/served/set.tar.gz", dir_ + "/src_tgz", "tar.gz", "set", 5000);
  CatalogueEntry e = entry("ok", "set.tar.gz");
  e.sha256 = tgz.sha256;
  const FetchResult r = fetch_dataset(e, options_);
  EXPECT_EQ(r.digest_checked_against, "catalogue");
  EXPECT_EQ(files::read_all((final_dir() / "song.mid").string()), files::read_all(tgz.source_dir + "/set/song.mid"));
}

TEST_F(FetchFaults, StallTimesOutKeepsThePartialFileAndTheNextRunResumes) {
  const CatalogueEntry e = entry("stall-once");
  const auto t0 = std::chrono::steady_clock::now();
  try {
    fetch_dataset(e, options_);
    FAIL() << "a stalled download succeeded";
  } catch (const DataError& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find(e.url), std::string::npos) << msg;
    EXPECT_NE(msg.find("timed out"), std::string::npos) << msg;
    EXPECT_NE(msg.find("run again to resume"), std::string::npos) << msg;
  }
  EXPECT_LT(seconds_since(t0), options_.download.low_speed_timeout_s + 5);
  expect_absent();
  ASSERT_TRUE(fs::exists(partial()));
  const int64_t kept = static_cast<int64_t>(fs::file_size(partial()));
  EXPECT_EQ(kept, zip_.bytes / 2);

  const FetchResult r = fetch_dataset(e, options_);
  EXPECT_EQ(r.download.resumed_from, kept);
  const std::vector<test::ServedRequest> reqs = server_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].range, "");
  EXPECT_EQ(reqs[1].range, "bytes=" + std::to_string(kept) + "-");
  EXPECT_EQ(r.sha256, zip_.sha256);
  expect_complete();
}

TEST_F(FetchFaults, StallRetriedWithinOneRunResumes) {
  options_.download.retries = 1;
  const auto t0 = std::chrono::steady_clock::now();
  const FetchResult r = fetch_dataset(entry("stall-once"), options_);
  EXPECT_LT(seconds_since(t0), options_.download.low_speed_timeout_s + 5);
  EXPECT_EQ(r.download.attempts, 2);
  EXPECT_EQ(server_->requests().at(1).range, "bytes=" + std::to_string(zip_.bytes / 2) + "-");
  expect_complete();
}

TEST_F(FetchFaults, DroppedConnectionResumesFromTheOffset) {
  options_.download.retries = 2;
  const FetchResult r = fetch_dataset(entry("drop-once"), options_);
  EXPECT_EQ(r.download.attempts, 2);
  const std::vector<test::ServedRequest> reqs = server_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].range, "bytes=" + std::to_string(zip_.bytes / 2) + "-");
  EXPECT_EQ(r.sha256, zip_.sha256);
  expect_complete();
}

TEST_F(FetchFaults, WrongBytesAreRefusedAgainstTheCatalogueDigest) {
  CatalogueEntry e = entry("wrong");
  e.sha256 = zip_.sha256;
  try {
    fetch_dataset(e, options_);
    FAIL() << "wrong bytes were accepted";
  } catch (const CheckFailed& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find(e.url), std::string::npos) << msg;
    EXPECT_NE(msg.find("differs from " + zip_.sha256 + " (catalogue)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("nothing was extracted"), std::string::npos) << msg;
  }
  expect_absent();
  EXPECT_FALSE(fs::exists(partial()));  // a later run starts over rather than resuming bad bytes
  EXPECT_FALSE(fs::exists(lock_path(e, options_.to_dir)));
}

TEST_F(FetchFaults, WrongBytesAreRefusedAgainstTheLockFileOfTheFirstDownload) {
  fetch_dataset(entry("ok"), options_);
  fs::remove_all(final_dir());
  try {
    fetch_dataset(entry("wrong"), options_);
    FAIL() << "a download differing from the first one was accepted";
  } catch (const CheckFailed& err) {
    EXPECT_NE(std::string(err.what()).find("lock file"), std::string::npos) << err.what();
  }
  expect_absent();
  EXPECT_EQ(fetch_dataset(entry("ok"), options_).digest_checked_against,
            "lock file " + lock_path(entry("ok"), options_.to_dir));
  expect_complete();
}

TEST_F(FetchFaults, NotFoundNamesTheUrlAndIsNotRetried) {
  options_.download.retries = 3;
  options_.download.retry_wait_s = 2;
  const CatalogueEntry e = entry("status-404");
  const auto t0 = std::chrono::steady_clock::now();
  try {
    fetch_dataset(e, options_);
    FAIL() << "a 404 succeeded";
  } catch (const DataError& err) {
    EXPECT_EQ(std::string(err.what()), e.url + ": HTTP 404 Not Found");
  }
  EXPECT_LT(seconds_since(t0), 1.5);
  EXPECT_EQ(server_->requests().size(), 1u);
  expect_absent();
}

TEST_F(FetchFaults, ServerErrorIsRetriedThenNamesTheUrl) {
  options_.download.retries = 2;
  const CatalogueEntry e = entry("status-500");
  try {
    fetch_dataset(e, options_);
    FAIL() << "a 500 succeeded";
  } catch (const DataError& err) {
    const std::string msg = err.what();
    EXPECT_EQ(msg.rfind(e.url + ": HTTP 500 Internal Server Error (3 attempts)", 0), 0u) << msg;
  }
  EXPECT_EQ(server_->requests().size(), 3u);
  expect_absent();
}

TEST_F(FetchFaults, ServerErrorOnceThenSuccess) {
  options_.download.retries = 1;
  fetch_dataset(entry("fail-once"), options_);
  EXPECT_EQ(server_->requests().size(), 2u);
  expect_complete();
}

TEST_F(FetchFaults, RedirectIsFollowed) {
  fetch_dataset(entry("redirect"), options_);
  const std::vector<test::ServedRequest> reqs = server_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].path, "/ok/set.zip");
  expect_complete();
}

TEST_F(FetchFaults, SilentServerTimesOut) {
  const CatalogueEntry e = entry("silent");
  const auto t0 = std::chrono::steady_clock::now();
  try {
    fetch_dataset(e, options_);
    FAIL() << "a silent server did not time out";
  } catch (const DataError& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find(e.url + ": timed out"), std::string::npos) << msg;
    EXPECT_NE(msg.find("nothing was downloaded"), std::string::npos) << msg;
  }
  EXPECT_LT(seconds_since(t0), options_.download.low_speed_timeout_s + 5);
  expect_absent();
}

TEST_F(FetchFaults, RefusedConnectionNamesTheUrl) {
  CatalogueEntry e = entry("ok");
  const std::string url = server_->url("ok", "set.zip");
  server_.reset();  // nothing listens on its port any more
  e.url = url;
  try {
    fetch_dataset(e, options_);
    FAIL() << "a closed port succeeded";
  } catch (const DataError& err) {
    EXPECT_NE(std::string(err.what()).find(url + ": "), std::string::npos) << err.what();
  }
  expect_absent();
}

TEST_F(FetchFaults, ServerIgnoringRangeStartsOver) {
  // A partial file of the right URL but with wrong bytes: the whole body replaces it.
  const CatalogueEntry e = entry("norange");
  files::ensure_dir(partial().parent_path().string());
  files::write_atomic(partial().string(), std::string(1000, 'x'));
  files::write_atomic(partial().string() + ".url", e.url);
  const FetchResult r = fetch_dataset(e, options_);
  EXPECT_EQ(server_->requests().at(0).range, "bytes=1000-");
  EXPECT_EQ(r.sha256, zip_.sha256);
  expect_complete();
}

TEST_F(FetchFaults, SlowButAliveServerIsNoTimeout) {
  server_.reset();
  // 8 KiB in 256-byte pieces every 0.2 s: about 6.4 s in all, 3x the 2 s low-speed timeout.
  const test::TestArchive small = test::make_test_archive(dir_ + "/served/set.zip", dir_ + "/src_small", "zip", "set", 7000);
  zip_ = small;
  server_ = std::make_unique<test::FaultServer>(dir_ + "/served", dir_, 0.2, 256);
  const auto t0 = std::chrono::steady_clock::now();
  const FetchResult r = fetch_dataset(entry("slow"), options_);
  EXPECT_GT(seconds_since(t0), 2 * options_.download.low_speed_timeout_s);
  EXPECT_EQ(r.download.attempts, 1);
  expect_complete();
}

TEST_F(FetchFaults, CorruptArchiveLeavesNothing) {
  files::write_atomic(dir_ + "/served/bad.zip", std::string(5000, 'z'));
  CatalogueEntry e = entry("ok", "bad.zip");
  try {
    fetch_dataset(e, options_);
    FAIL() << "a corrupt archive was extracted";
  } catch (const DataError& err) {
    EXPECT_NE(std::string(err.what()).find("bad.zip.part"), std::string::npos) << err.what();
  }
  expect_absent();
  EXPECT_FALSE(fs::exists(lock_path(e, options_.to_dir)));  // a bad download is never recorded as the reference
}

TEST_F(FetchFaults, MissingArchiveRootLeavesNothing) {
  CatalogueEntry e = entry("ok");
  e.archive_root = "groove";
  try {
    fetch_dataset(e, options_);
    FAIL() << "an archive without its expected folder was accepted";
  } catch (const DataError& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("has no folder 'groove'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("holds: set"), std::string::npos) << msg;
  }
  expect_absent();
}

TEST_F(FetchFaults, EntriesLeavingTheFolderAreRefused) {
  const test::CommandResult r = test::run_shell(
      test::shell_quote(test::python()) + " -c " +
      test::shell_quote("import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w'); z.writestr('set/ok.txt','a'); "
                        "z.writestr('set/../../escape.txt','b'); z.close()") +
      " " + test::shell_quote(dir_ + "/served/evil.zip"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  try {
    fetch_dataset(entry("ok", "evil.zip"), options_);
    FAIL() << "a path leaving the folder was extracted";
  } catch (const DataError& err) {
    EXPECT_NE(std::string(err.what()).find("set/../../escape.txt"), std::string::npos) << err.what();
  }
  expect_absent();
  EXPECT_FALSE(fs::exists(fs::path(dir_) / "to/escape.txt"));
  EXPECT_FALSE(fs::exists(fs::path(dir_) / "to/group/escape.txt"));
}

TEST(FetchCatalogue, TheRepositoryCatalogueIsComplete) {
  const Catalogue c = load_catalogue(test::source_path("data/catalogue.yaml"));
  for (const char* name : {"pop909", "emopia", "groove", "maestro", "lakh-full"}) {
    const CatalogueEntry* e = c.find(name);
    ASSERT_NE(e, nullptr) << name;
    EXPECT_FALSE(e->licence.empty()) << name;
    EXPECT_FALSE(e->notice.empty()) << name;
  }
  EXPECT_TRUE(c.find("emopia")->non_commercial);
  EXPECT_TRUE(c.find("maestro")->non_commercial);
  EXPECT_FALSE(c.find("groove")->non_commercial);
  EXPECT_EQ(c.find("emopia")->dest, "emopia/EMOPIA_1.0");  // where configs/prepare_emopia.yaml looks
  EXPECT_EQ(c.find("lakh-full")->archive, "tar.gz");
  EXPECT_EQ(c.find("emopia")->archive, "zip");
  EXPECT_NE(licence_text(*c.find("emopia")).find("NON-COMMERCIAL"), std::string::npos);
}

TEST(FetchCatalogue, MistakesNameTheFileLineAndEntry) {
  const std::string dir = test::scratch_dir("fetch_catalogue");
  const std::string path = dir + "/c.yaml";
  auto error_of = [&](const std::string& text) -> std::string {
    files::write_atomic(path, text);
    try {
      load_catalogue(path);
    } catch (const config::ConfigError& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string head = "datasets:\n  x:\n    title: X\n    licence: MIT\n    notice: n\n";
  EXPECT_EQ(error_of(head), path + ":3:5: x: missing required key 'url'");
  EXPECT_EQ(error_of(head + "    url: ftp://h/x.zip\n"), path + ":6:10: x.url: expected an http(s) address, got 'ftp://h/x.zip'");
  EXPECT_NE(error_of(head + "    url: https://h/x.zip\n    sha256: abc\n    sha256_source: s\n").find(":7:13: x.sha256: expected 64"),
            std::string::npos);
  EXPECT_NE(error_of(head + "    url: https://h/x.zip\n    sha: 1\n").find(":7:5: x.sha: unknown key"), std::string::npos);
  EXPECT_NE(error_of(head + "    url: https://h/x.zip\n    dest: ../up\n").find("expected a relative folder"), std::string::npos);
}

TEST(FetchCatalogue, UrlEntriesAreNamedAfterTheirFile) {
  EXPECT_EQ(entry_for_url("http://h/a/lmd_full.tar.gz").name, "lmd_full");
  EXPECT_EQ(entry_for_url("http://h/a/lmd_full.tar.gz").archive, "tar.gz");
  EXPECT_EQ(entry_for_url("https://zenodo.org/record/1/files/EMOPIA_1.0.zip?download=1").name, "EMOPIA_1.0");
  EXPECT_EQ(entry_for_url("https://h/song.mid").archive, "file");
  EXPECT_THROW(entry_for_url("https://h/"), UsageError);
}

}  // namespace
}  // namespace kmidi::fetch
