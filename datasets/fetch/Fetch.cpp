#include "datasets/fetch/Fetch.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <ctime>
#include <filesystem>
#include <optional>
#include <system_error>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "datasets/fetch/Extract.h"

namespace kmidi::fetch {
namespace fs = std::filesystem;
namespace {

struct LockRecord {
  std::string url, sha256;
  int64_t bytes = 0;
};

std::optional<LockRecord> read_lock(const std::string& path) {
  if (!fs::exists(path)) return std::nullopt;
  try {
    const YAML::Node n = YAML::Load(files::read_all(path));
    LockRecord r;
    r.url = n["url"].as<std::string>();
    r.sha256 = n["sha256"].as<std::string>();
    r.bytes = n["bytes"].as<int64_t>();
    return r;
  } catch (const YAML::Exception& e) {
    throw DataError(path + ": unreadable lock file (" + e.what() + "); delete it to accept a new download");
  }
}

void write_lock(const std::string& path, const CatalogueEntry& e, const std::string& sha256, int64_t bytes) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  YAML::Emitter y;
  y << YAML::BeginMap << YAML::Key << "name" << YAML::Value << e.name << YAML::Key << "url" << YAML::Value << e.url
    << YAML::Key << "sha256" << YAML::Value << sha256 << YAML::Key << "bytes" << YAML::Value << bytes << YAML::Key
    << "licence" << YAML::Value << e.licence << YAML::Key << "fetched" << YAML::Value << stamp << YAML::EndMap;
  files::write_atomic(path, "# kmidi fetch-data: the digest every later fetch of this data set must match\n" +
                                std::string(y.c_str()) + "\n");
}

/// Removes a folder tree on scope exit unless released.
class TreeGuard {
 public:
  explicit TreeGuard(std::string path) : path_(std::move(path)) {}
  ~TreeGuard() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  TreeGuard(const TreeGuard&) = delete;
  TreeGuard& operator=(const TreeGuard&) = delete;

 private:
  std::string path_;
};

/// Extraction folders left by a killed fetch of the same data set.
void remove_stale_staging(const fs::path& parent, const std::string& prefix) {
  std::error_code ec;
  for (const fs::directory_entry& d : fs::directory_iterator(parent, ec)) {
    const std::string name = d.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const pid_t pid = static_cast<pid_t>(std::atoi(name.c_str() + prefix.size()));
    if (pid > 0 && ::kill(pid, 0) == 0) continue;  // a live fetch owns it
    spdlog::info("removing {} left by an interrupted fetch", d.path().string());
    fs::remove_all(d.path(), ec);
  }
}

/// The folder inside the extracted tree that becomes the data set.
fs::path data_root(const fs::path& staging, const CatalogueEntry& e) {
  std::vector<std::string> top;
  for (const fs::directory_entry& d : fs::directory_iterator(staging)) top.push_back(d.path().filename().string());
  std::string listing;
  for (size_t i = 0; i < top.size() && i < 8; ++i) listing += (i ? ", " : "") + top[i];
  if (!e.archive_root.empty()) {
    const fs::path root = staging / e.archive_root;
    if (!fs::is_directory(root)) {
      throw DataError(e.url + ": the archive has no folder '" + e.archive_root +
                      "' (the catalogue's archive_root); its top level holds: " + (listing.empty() ? "nothing" : listing));
    }
    return root;
  }
  if (top.empty()) throw DataError(e.url + ": the archive is empty");
  if (top.size() == 1 && fs::is_directory(staging / top[0])) return staging / top[0];
  return staging;
}

void sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

CatalogueEntry entry_for_url(const std::string& url) {
  CatalogueEntry e;
  e.url = url;
  e.archive = archive_kind_from_url(url);
  std::string file = url_file_name(url);
  for (const char* ext : {".tar.gz", ".tgz", ".zip", ".tar"}) {
    const std::string x = ext;
    if (file.size() > x.size() && file.compare(file.size() - x.size(), x.size(), x) == 0) {
      file.resize(file.size() - x.size());
      break;
    }
  }
  if (file.empty() || file == "." || file == "..") throw UsageError(url + ": cannot name a data set after this URL (no file name)");
  e.name = file;
  e.title = file;
  e.dest = file;
  e.licence = "unknown";
  e.notice = "not in kmidi's catalogue: read the publisher's terms before using this data";
  return e;
}

std::string licence_text(const CatalogueEntry& e) {
  std::string out = e.title + " (" + e.name + "): licence " + e.licence + "\n";
  if (e.non_commercial) out += "  NON-COMMERCIAL USE ONLY: no commercial use of this data or of models trained on it without the rights holders' permission\n";
  out += "  " + e.notice + "\n";
  return out;
}

std::string lock_path(const CatalogueEntry& entry, const std::string& to_dir) {
  return (fs::absolute(to_dir).lexically_normal() / entry.dest).string() + ".fetch.lock";
}

FetchResult fetch_dataset(const CatalogueEntry& e, const FetchOptions& options) {
  if (options.to_dir.empty()) throw UsageError("fetch-data: no target folder (--to)");
  options.download.validate();
  const fs::path to = fs::absolute(options.to_dir).lexically_normal();
  const fs::path final_dir = to / e.dest;
  FetchResult result;
  result.path = final_dir.string();
  if (fs::exists(final_dir)) {
    result.already_present = true;
    return result;
  }
  const std::string lock = lock_path(e, options.to_dir);
  const std::optional<LockRecord> locked = read_lock(lock);
  std::string expected = e.sha256, expected_from = e.sha256.empty() ? "" : "catalogue";
  if (expected.empty() && locked) expected = locked->sha256, expected_from = "lock file " + lock;

  const fs::path downloads = to / ".kmidi-downloads";
  files::ensure_dir(downloads.string());
  const std::string partial = (downloads / (e.name + "--" + url_file_name(e.url) + ".part")).string();
  const std::string partial_url = partial + ".url";
  // A partial download of another URL is no prefix of this one.
  if (fs::exists(partial) && (!fs::exists(partial_url) || files::read_all(partial_url) != e.url)) {
    spdlog::info("{}: discarding a partial download of another URL", partial);
    fs::remove(partial);
  }
  files::write_atomic(partial_url, e.url);

  result.download = download(e.url, partial, options.download);
  const int64_t bytes = result.download.bytes;
  auto refuse = [&](const std::string& why) {
    std::error_code ec;
    fs::remove(partial, ec);
    fs::remove(partial_url, ec);
    throw CheckFailed(e.url + ": " + why + "; the download was deleted and nothing was extracted");
  };
  if (e.size_bytes && bytes != *e.size_bytes) {
    refuse("size " + std::to_string(bytes) + " bytes, the catalogue says " + std::to_string(*e.size_bytes));
  }
  result.sha256 = hash::sha256_file(partial);
  if (!expected.empty() && result.sha256 != expected) {
    refuse("sha256 " + result.sha256 + " differs from " + expected + " (" + expected_from + ")");
  }
  result.digest_checked_against = expected_from;

  // Extract beside the final folder (same file system: the rename is atomic).
  files::ensure_dir(final_dir.parent_path().string());
  const std::string staging_prefix = "." + final_dir.filename().string() + ".fetching-";
  remove_stale_staging(final_dir.parent_path(), staging_prefix);
  const fs::path staging = final_dir.parent_path() / (staging_prefix + std::to_string(::getpid()));
  fs::remove_all(staging);
  files::ensure_dir(staging.string());
  TreeGuard cleanup(staging.string());
  if (e.archive == "file") {
    fs::copy_file(partial, staging / url_file_name(e.url));
    result.files = 1;
  } else {
    result.files = extract_archive(partial, staging.string()).files;
  }
  const fs::path root = data_root(staging, e);
  files::fault_point("fetch_before_rename", e.name);
  fs::rename(root, final_dir);
  sync_dir(final_dir.parent_path());
  write_lock(lock, e, result.sha256, bytes);

  std::error_code ec;
  if (options.keep_archive) {
    fs::rename(partial, downloads / url_file_name(e.url), ec);
  } else {
    fs::remove(partial, ec);
  }
  fs::remove(partial_url, ec);
  return result;
}

}  // namespace kmidi::fetch
