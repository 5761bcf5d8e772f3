#pragma once
// tests/datasets/fetch/fault_server.py run for one test: an HTTP server on
// 127.0.0.1 (a free port) with stall, drop, wrong-bytes, status, redirect and
// slow modes, and a log of the requests (path, Range header) it received.

#include <string>
#include <vector>

namespace kmidi::test {

struct ServedRequest {
  std::string path;
  std::string range;  ///< the Range header, "" when none
};

class FaultServer {
 public:
  /// Serves the files of `root`; `work` holds its log and port file.
  FaultServer(const std::string& root, const std::string& work, double slow_delay_s = 0.3, int slow_chunk = 256);
  ~FaultServer();
  FaultServer(const FaultServer&) = delete;
  FaultServer& operator=(const FaultServer&) = delete;

  /// http://127.0.0.1:PORT/<mode>/<file>
  std::string url(const std::string& mode, const std::string& file) const;
  /// Requests so far, in order.
  std::vector<ServedRequest> requests() const;

 private:
  std::string log_;
  int port_ = 0;
  int pid_ = 0;
};

/// A test archive built by make_archive.py: the source tree it packed, and
/// the archive's SHA-256 and size as Python's hashlib computed them.
struct TestArchive {
  std::string path, source_dir, sha256;
  long long bytes = 0;
};

/// Packs <source_dir>/<top>/{song.mid (payload bytes), labels/label.csv} into
/// `path` as `kind` ("zip" or "tar.gz").
TestArchive make_test_archive(const std::string& path, const std::string& source_dir, const std::string& kind,
                              const std::string& top, int payload_bytes);

}  // namespace kmidi::test
