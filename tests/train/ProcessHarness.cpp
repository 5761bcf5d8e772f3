#include "tests/train/ProcessHarness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/TestSupport.h"

extern char** environ;

namespace kmidi::testing {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool is_launcher_variable(const std::string& name) {
  static const char* exact[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                                "GROUP_WORLD_SIZE", "ROLE_RANK", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                                "KMIDI_FAULT", "SLURM_CONF"};
  for (const char* e : exact) {
    if (name == e) return true;
  }
  for (const char* prefix : {"OMPI_", "PMIX_", "SLURM_", "TORCHELASTIC_", "PET_"}) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string tail(const std::string& text, size_t n) { return text.size() <= n ? text : "..." + text.substr(text.size() - n); }

}  // namespace

Process Process::start(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                       const std::string& log_dir, const std::string& name, bool keep_group) {
  Process p;
  p.keep_group_ = keep_group;
  p.out_path_ = log_dir + "/" + name + ".out";
  p.err_path_ = log_dir + "/" + name + ".err";
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('='));
    if (is_launcher_variable(key) || env.count(key) > 0) continue;
    environment.push_back(entry);
  }
  for (const auto& [key, value] : env) environment.push_back(key + "=" + value);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : environment) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  const int out = ::open(p.out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err = ::open(p.err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0 || err < 0) throw std::runtime_error("cannot create the logs of " + name + " in " + log_dir);
  p.started_ = now_seconds();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed for " + name);
  if (pid == 0) {
    ::dup2(out, STDOUT_FILENO);
    ::dup2(err, STDERR_FILENO);
    ::setpgid(0, 0);  // its own process group: launchers' children can be killed together
    ::execve(args[0], args.data(), envp.data());
    std::fprintf(stderr, "exec %s failed: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(out);
  ::close(err);
  p.pid_ = pid;
  return p;
}

Process::Process(Process&& other) noexcept { *this = std::move(other); }

Process& Process::operator=(Process&& other) noexcept {
  std::swap(pid_, other.pid_);
  std::swap(keep_group_, other.keep_group_);
  std::swap(started_, other.started_);
  std::swap(out_path_, other.out_path_);
  std::swap(err_path_, other.err_path_);
  return *this;
}

Process::~Process() {
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

void Process::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

ProcessResult Process::finish(int status) {
  ProcessResult r;
  r.seconds = now_seconds() - started_;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  // Children it left behind (a launcher's workers) go with it.
  if (!keep_group_) ::kill(-pid_, SIGKILL);
  pid_ = -1;
  r.out = read_file(out_path_);
  r.out_path = out_path_;
  r.err = read_file(err_path_);
  return r;
}

std::optional<ProcessResult> Process::poll() {
  if (pid_ <= 0) return std::nullopt;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) return finish(status);
  return std::nullopt;
}

ProcessResult Process::wait(double timeout_s) {
  const double deadline = now_seconds() + timeout_s;
  while (now_seconds() < deadline) {
    if (auto r = poll()) return *r;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  ProcessResult r = finish(status);
  r.timed_out = true;
  return r;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a free port");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string make_temp_dir(const std::string& prefix) {
  // Program lifetime, as before the shared helper: a test may keep a job's folder in a cache.
  static std::atomic<int> made{0};
  return test::scratch_dir(prefix + "." + std::to_string(made++), test::ScratchLifetime::kProgram);
}

ProcessResult run_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                          const std::string& log_dir, const std::string& name, double timeout_s, bool keep_group) {
  auto p = Process::start(argv, env, log_dir, name, keep_group);
  return p.wait(timeout_s);
}

std::string describe(const ProcessResult& r) {
  std::ostringstream ss;
  ss << r.out_path << ": exit " << r.exit_code << (r.signal ? ", signal " + std::to_string(r.signal) : "")
     << (r.timed_out ? ", TIMED OUT" : "") << " after " << r.seconds << " s\n--- stdout:\n"
     << tail(r.out, 3000) << "\n--- stderr:\n"
     << tail(r.err, 3000);
  return ss.str();
}

}  // namespace kmidi::testing
