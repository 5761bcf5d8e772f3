#include "tests/datasets/fetch/FaultServer.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/TestSupport.h"

namespace kmidi::test {
namespace {

std::string field(const std::string& line, const std::string& key) {
  // Lines are json.dumps({"path": "...", "range": "..." or null}); paths hold no quotes.
  const std::string tag = "\"" + key + "\": ";
  const size_t at = line.find(tag);
  if (at == std::string::npos || line.compare(at + tag.size(), 4, "null") == 0) return "";
  const size_t start = at + tag.size() + 1;
  return line.substr(start, line.find('"', start) - start);
}

}  // namespace

FaultServer::FaultServer(const std::string& root, const std::string& work, double slow_delay_s, int slow_chunk)
    : log_(work + "/requests.log") {
  const std::string port_file = work + "/port";
  std::filesystem::remove(port_file);
  const CommandResult r = run_shell(
      shell_quote(python()) + " " + shell_quote(source_path("tests/datasets/fetch/fault_server.py")) + " --root " +
      shell_quote(root) + " --log " + shell_quote(log_) + " --port-file " + shell_quote(port_file) +
      " --slow-delay " + std::to_string(slow_delay_s) + " --slow-chunk " + std::to_string(slow_chunk) + " >" +
      shell_quote(work + "/server.out") + " 2>&1 & echo $!");
  pid_ = std::stoi(r.output);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!std::filesystem::exists(port_file)) {
    if (std::chrono::steady_clock::now() > deadline || ::kill(pid_, 0) != 0) {
      throw std::runtime_error("fault_server.py did not start; see " + work + "/server.out");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::ifstream(port_file) >> port_;
}

FaultServer::~FaultServer() {
  if (pid_ > 0) ::kill(pid_, SIGKILL);
}

std::string FaultServer::url(const std::string& mode, const std::string& file) const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/" + mode + "/" + file;
}

std::vector<ServedRequest> FaultServer::requests() const {
  std::vector<ServedRequest> out;
  std::ifstream in(log_);
  for (std::string line; std::getline(in, line);) out.push_back({field(line, "path"), field(line, "range")});
  return out;
}

TestArchive make_test_archive(const std::string& path, const std::string& source_dir, const std::string& kind,
                              const std::string& top, int payload_bytes) {
  const CommandResult r =
      run({python(), source_path("tests/datasets/fetch/make_archive.py"), source_dir, path, kind, top,
           std::to_string(payload_bytes)});
  if (r.exit_code != 0) throw std::runtime_error("make_archive.py failed: " + r.output);
  TestArchive a;
  a.path = path;
  a.source_dir = source_dir;
  std::istringstream(r.output) >> a.sha256 >> a.bytes;
  return a;
}

}  // namespace kmidi::test
