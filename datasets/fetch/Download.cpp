#include "datasets/fetch/Download.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "core/Errors.h"
#include "core/Progress.h"

namespace kmidi::fetch {
namespace {

constexpr double kMaxRetryWaitSeconds = 60;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("libcurl: global init failed");
  });
}

/// The partial file, opened for appending; closed on scope exit.
class PartialFile {
 public:
  explicit PartialFile(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) throw DataError(path_ + ": cannot open for writing: " + std::strerror(errno));
  }
  ~PartialFile() { ::close(fd_); }
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  int64_t size() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw DataError(path_ + ": cannot stat: " + std::strerror(errno));
    return st.st_size;
  }
  void truncate() {
    if (::ftruncate(fd_, 0) != 0) throw DataError(path_ + ": cannot truncate: " + std::strerror(errno));
  }
  /// False (errno set) when the disk refused the bytes.
  bool write(const char* data, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd_, data, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      data += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  void sync() {
    if (::fsync(fd_) != 0) throw DataError(path_ + ": cannot sync: " + std::strerror(errno));
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

/// State of one HTTP request, shared with libcurl's callbacks.
struct Attempt {
  CURL* curl = nullptr;
  PartialFile* file = nullptr;
  std::string label;
  bool show_progress = true;
  int64_t offset = 0;          // bytes on disk when the body starts
  int64_t received = 0;        // body bytes written by this request
  int64_t expected_total = -1; // whole-file size the server announced
  long status = 0;             // of the last response (after redirects)
  std::string reason;          // its reason phrase
  int64_t range_start = -1;    // Content-Range start of a 206
  int64_t range_total = -1;    // Content-Range total
  int64_t content_length = -1;
  bool body_started = false;
  std::string error_body;      // the start of an error page
  std::string abort_reason;    // why a callback stopped the transfer
  bool abort_retryable = false;
  std::unique_ptr<Progress> progress;
  double stall_limit_s = 0;    // no byte for this long ends the attempt
  std::chrono::steady_clock::time_point last_byte = std::chrono::steady_clock::now();
  bool stalled = false;
};

int64_t parse_int(const std::string& s) {
  try {
    return std::stoll(s);
  } catch (const std::exception&) {
    return -1;
  }
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  Attempt& a = *static_cast<Attempt*>(user);
  const size_t n = size * count;
  const std::string line = trim(std::string(data, n));
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (each redirect sends one)
    a.range_start = a.range_total = a.content_length = -1;
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
    a.reason = sp2 == std::string::npos ? "" : line.substr(sp2 + 1);
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return n;
  std::string name = line.substr(0, colon);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  const std::string value = trim(line.substr(colon + 1));
  if (name == "content-length") {
    a.content_length = parse_int(value);
  } else if (name == "content-range" && value.rfind("bytes ", 0) == 0) {  // bytes START-END/TOTAL
    const size_t dash = value.find('-'), slash = value.find('/');
    if (dash != std::string::npos) a.range_start = parse_int(value.substr(6, dash - 6));
    if (slash != std::string::npos) a.range_total = parse_int(value.substr(slash + 1));
  }
  return n;
}

/// Decides, at the body's first bytes, whether they belong to the file.
/// Returns false to abort the transfer.
bool start_body(Attempt& a) {
  a.body_started = true;
  curl_easy_getinfo(a.curl, CURLINFO_RESPONSE_CODE, &a.status);
  if (a.status >= 300) return true;  // an error page: collected, never written
  if (a.offset > 0 && a.status == 200) {
    spdlog::warn("{}: the server ignored the Range request; downloading from the start", a.label);
    a.file->truncate();
    a.offset = 0;
  } else if (a.status == 206 && a.range_start != a.offset) {
    a.abort_reason = "the server resumed at byte " + std::to_string(a.range_start) + ", not at " +
                     std::to_string(a.offset) + " as asked; starting over";
    a.abort_retryable = true;
    a.file->truncate();
    return false;
  }
  if (a.status == 206 && a.range_total > 0) {
    a.expected_total = a.range_total;
  } else if (a.content_length >= 0) {
    a.expected_total = a.offset + a.content_length;
  }
  if (a.show_progress) {
    const int64_t remaining_kib = a.expected_total > 0 ? (a.expected_total - a.offset + 1023) / 1024 : -1;
    const std::string label =
        a.offset > 0 ? a.label + " (resumed at " + std::to_string(a.offset / 1024) + " KiB)" : a.label;
    a.progress = std::make_unique<Progress>(label, remaining_kib, "KiB", 10.0);
  }
  return true;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  Attempt& a = *static_cast<Attempt*>(user);
  const size_t n = size * count;
  if (!a.body_started && !start_body(a)) return 0;
  if (a.status >= 300) {
    if (a.error_body.size() < 300) a.error_body.append(data, std::min<size_t>(n, 300 - a.error_body.size()));
    return n;
  }
  if (!a.file->write(data, n)) {
    a.abort_reason = "cannot write " + a.file->path() + ": " + std::strerror(errno);
    a.abort_retryable = false;
    return 0;
  }
  a.received += static_cast<int64_t>(n);
  a.last_byte = std::chrono::steady_clock::now();
  if (a.progress) a.progress->update(a.received / 1024);
  return n;
}

/// libcurl's own low-speed rule averages the rate over several seconds, so a
/// stall after a fast start is noticed seconds late; this counts the time
/// since the last byte instead (called about once a second while idle).
int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  Attempt& a = *static_cast<Attempt*>(user);
  const double idle = std::chrono::duration<double>(std::chrono::steady_clock::now() - a.last_byte).count();
  if (idle < a.stall_limit_s) return 0;
  a.stalled = true;
  return 1;
}

struct Outcome {
  bool ok = false;
  bool retryable = false;
  bool start_over = false;  // what is on disk cannot be resumed: discard it and ask again
  std::string error;
};

bool retryable_status(long status) { return status >= 500 || status == 408 || status == 429; }

Outcome run_attempt(const std::string& url, PartialFile& file, const DownloadOptions& o, int64_t& offset_out) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) throw std::runtime_error("libcurl: cannot create a handle");
  Attempt a;
  a.curl = curl.get();
  a.file = &file;
  a.label = "fetch " + url;
  a.show_progress = o.progress;
  a.offset = file.size();
  char errbuf[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, static_cast<long>(o.max_redirects));
#if LIBCURL_VERSION_NUM >= 0x075500  // 7.85: protocol lists as text
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout_s * 1000));
  // No total timeout (archives can be gigabytes): a transfer ends when no byte came for low_speed_timeout_s.
  a.stall_limit_s = o.low_speed_timeout_s;
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &a);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "kmidi-fetch-data/1");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
  if (a.offset > 0) curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(a.offset));

  const CURLcode res = curl_easy_perform(c);
  if (a.progress) a.progress->finish();
  if (!a.body_started) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
  offset_out = a.offset;
  file.sync();

  Outcome out;
  if (a.stalled) {
    out.retryable = true;
    out.error = "timed out: no data for " + std::to_string(static_cast<int>(o.low_speed_timeout_s)) +
                " s (--low-speed-timeout) after " + std::to_string(file.size()) + " bytes";
    return out;
  }
  if (a.status == 416 || res == CURLE_RANGE_ERROR) {  // the range lies past the end, or ranges are not served
    out.start_over = true;
    out.error = a.status == 416 ? "HTTP 416 for a resume at byte " + std::to_string(a.offset)
                                : "the server does not serve byte ranges";
    return out;
  }
  if (a.status >= 400) {
    out.retryable = retryable_status(a.status);
    out.error = "HTTP " + std::to_string(a.status) + (a.reason.empty() ? "" : " " + a.reason);
    return out;
  }
  if (!a.abort_reason.empty()) {
    out.retryable = a.abort_retryable;
    out.error = a.abort_reason;
    return out;
  }
  if (res != CURLE_OK) {
    // Timeouts, refused or dropped connections, TLS failures: the network, so worth another try.
    out.retryable = res != CURLE_TOO_MANY_REDIRECTS && res != CURLE_UNSUPPORTED_PROTOCOL && res != CURLE_URL_MALFORMAT;
    out.error = errbuf[0] ? std::string(errbuf) : curl_easy_strerror(res);
    if (res == CURLE_OPERATION_TIMEDOUT) out.error = "timed out: " + out.error;
    return out;
  }
  if (a.status < 200 || a.status >= 300) {
    out.error = "unexpected HTTP status " + std::to_string(a.status);
    return out;
  }
  const int64_t on_disk = file.size();
  if (a.expected_total >= 0 && on_disk != a.expected_total) {
    out.retryable = true;
    out.error = "the connection ended at byte " + std::to_string(on_disk) + " of " + std::to_string(a.expected_total);
    return out;
  }
  out.ok = true;
  return out;
}

}  // namespace

void DownloadOptions::validate() const {
  if (!(connect_timeout_s > 0)) throw UsageError("--connect-timeout: expected seconds > 0, got " + std::to_string(connect_timeout_s));
  if (!(low_speed_timeout_s >= 1)) {
    throw UsageError("--low-speed-timeout: expected seconds >= 1, got " + std::to_string(low_speed_timeout_s));
  }
  if (retries < 0) throw UsageError("--retries: expected >= 0, got " + std::to_string(retries));
  if (!(retry_wait_s >= 0)) throw UsageError("--retry-wait: expected seconds >= 0, got " + std::to_string(retry_wait_s));
  if (max_redirects < 0) throw UsageError("max_redirects: expected >= 0, got " + std::to_string(max_redirects));
}

DownloadResult download(const std::string& url, const std::string& partial_path, const DownloadOptions& options) {
  options.validate();
  global_init();
  PartialFile file(partial_path);
  DownloadResult result;
  result.resumed_from = file.size();
  std::string last_error;
  bool started_over = false;
  for (int attempt = 0; attempt <= options.retries; ++attempt) {
    if (attempt > 0) {
      const double wait = std::min(kMaxRetryWaitSeconds, options.retry_wait_s * std::pow(2.0, attempt - 1));
      spdlog::warn("{}: {}; retry {} of {} in {:.1f} s, resuming at byte {}", url, last_error, attempt,
                   options.retries, wait, file.size());
      std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    }
    int64_t offset = 0;
    const Outcome outcome = run_attempt(url, file, options, offset);
    ++result.attempts;
    if (outcome.ok) {
      result.bytes = file.size();
      return result;
    }
    last_error = outcome.error;
    if (outcome.start_over && !started_over) {  // once, at once, and not counted as a failed try
      spdlog::warn("{}: {}; discarding the {} bytes on disk and downloading from the start", url, last_error, file.size());
      file.truncate();
      started_over = true;
      --attempt;
      continue;
    }
    if (!outcome.retryable) throw DataError(url + ": " + last_error);
  }
  const int64_t kept = file.size();
  throw DataError(url + ": " + last_error + " (" + std::to_string(result.attempts) + " attempt" +
                  (result.attempts == 1 ? "" : "s") + "); " +
                  (kept > 0 ? std::to_string(kept) + " bytes kept in " + partial_path + ": run again to resume"
                            : "nothing was downloaded"));
}

}  // namespace kmidi::fetch
