#pragma once
// Resumable HTTP(S) downloads through libcurl that cannot hang: a connect
// timeout, a stall timeout (no byte for N seconds ends the attempt),
// retries with exponential backoff, and resume of a partial file with an
// HTTP Range request. libcurl stays inside Download.cpp.

#include <cstdint>
#include <string>

namespace kmidi::fetch {

/// How a download behaves on a slow or failing network.
struct DownloadOptions {
  double connect_timeout_s = 20;    ///< to open the TCP/TLS connection; > 0
  double low_speed_timeout_s = 30;  ///< an attempt ends when no byte arrived for this many seconds; >= 1
  int retries = 4;                  ///< further attempts after a failed one (timeouts, dropped connections, HTTP 5xx); >= 0
  double retry_wait_s = 2;          ///< wait before the first retry, doubled for each further one (at most 60 s); >= 0
  int max_redirects = 10;           ///< HTTP redirects followed (http and https only)
  bool progress = true;             ///< a progress bar (a log line when stderr is no terminal)

  /// Throws UsageError naming the first option out of range.
  void validate() const;
};

struct DownloadResult {
  int64_t bytes = 0;          ///< size of the complete file
  int64_t resumed_from = 0;   ///< bytes already on disk when this call started (0: a fresh download)
  int attempts = 0;           ///< HTTP requests made
};

/// Downloads `url` into `partial_path`, appending to what is already there
/// (a Range request; a server that ignores it is answered by starting over).
/// Returns when the server has sent the whole body. Throws DataError naming
/// the URL: an HTTP error status (4xx at once; 5xx after the retries), a
/// timeout or a dropped connection after the retries (the partial file is
/// kept for the next call to resume).
DownloadResult download(const std::string& url, const std::string& partial_path, const DownloadOptions& options);

}  // namespace kmidi::fetch
