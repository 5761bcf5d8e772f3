#include "tests/train/SlurmCluster.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tests/train/ProcessHarness.h"

namespace kmidi::testing {
namespace {

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

bool running(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  // A daemon that exited but was not reaped is as good as gone.
  const std::string stat = read("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'Z';
}

std::string hostname() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

}  // namespace

SlurmCluster::SlurmCluster(const std::string& dir) : dir_(dir), conf_(dir + "/slurm.conf") {
  namespace fs = std::filesystem;
  for (const char* sub : {"state", "spool", "log", "munge"}) fs::create_directories(dir_ + "/" + sub);
  ::chmod((dir_ + "/munge").c_str(), 0700);

  // A munged of our own: its own key and socket, nothing shared with the system.
  std::random_device random;
  std::string key(1024, '\0');
  for (auto& c : key) c = static_cast<char>(random());
  const std::string key_file = dir_ + "/munge/munge.key";
  write(key_file, key);
  ::chmod(key_file.c_str(), 0400);
  const std::string socket = dir_ + "/munge/socket";
  const auto munged = run_process({"/usr/sbin/munged", "--force", "--socket=" + socket, "--key-file=" + key_file,
                                   "--pid-file=" + dir_ + "/munge/munged.pid",
                                   "--log-file=" + dir_ + "/log/munged.log", "--seed-file=" + dir_ + "/munge/seed"},
                                  {}, dir_ + "/log", "munged-start", 30, /*keep_group=*/true);
  if (munged.exit_code != 0) throw std::runtime_error("munged did not start: " + describe(munged) + logs());
  bool munge_ok = false;
  for (int i = 0; i < 100 && !munge_ok; ++i) {
    const auto check = run_process({"/bin/bash", "-c", "munge -S " + socket + " -n </dev/null | unmunge -S " + socket},
                                   {}, dir_ + "/log", "munge-check", 10);
    munge_ok = check.exit_code == 0;
    if (!munge_ok) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!munge_ok) throw std::runtime_error("munged does not answer on " + socket + logs());

  const std::string host = hostname();
  std::ostringstream conf;
  conf << "ClusterName=kmiditest\n"
       << "SlurmctldHost=" << host << "\n"
       << "SlurmctldPort=" << free_port() << "\n"
       << "SlurmdPort=" << free_port() << "\n"
       << "NodeName=" << host << " CPUs=2 State=UNKNOWN\n"
       << "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
       << "SlurmUser=root\nSlurmdUser=root\n"
       << "AuthType=auth/munge\nAuthInfo=socket=" << socket << "\n"
       << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
       << "SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n"
       << "ReturnToService=2\nMpiDefault=none\n"
       << "StateSaveLocation=" << dir_ << "/state\n"
       << "SlurmdSpoolDir=" << dir_ << "/spool\n"
       << "SlurmctldPidFile=" << dir_ << "/slurmctld.pid\n"
       << "SlurmdPidFile=" << dir_ << "/slurmd.pid\n"
       << "SlurmctldLogFile=" << dir_ << "/log/slurmctld.log\n"
       << "SlurmdLogFile=" << dir_ << "/log/slurmd.log\n"
       << "JobCompType=jobcomp/none\nAccountingStorageType=accounting_storage/none\n"
       << "JobAcctGatherType=jobacct_gather/none\n";
  write(conf_, conf.str());

  for (const char* daemon : {"slurmctld", "slurmd"}) {
    const auto started = run_process({std::string("/usr/sbin/") + daemon, "-f", conf_}, env(), dir_ + "/log",
                                     std::string(daemon) + "-start", 30, /*keep_group=*/true);
    if (started.exit_code != 0) {
      stop();
      throw std::runtime_error(std::string(daemon) + " did not start: " + describe(started) + logs());
    }
  }
  std::string state;
  const double deadline = now_seconds() + 30;
  while (now_seconds() < deadline) {
    const auto sinfo = run_process({"/usr/bin/sinfo", "-h", "-o", "%t"}, env(), dir_ + "/log", "sinfo", 5);
    state = sinfo.out.substr(0, sinfo.out.find('\n'));
    if (state == "idle") return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop();
  throw std::runtime_error("the Slurm node never became idle (last state '" + state + "')" + logs());
}

SlurmCluster::~SlurmCluster() { stop(); }

void SlurmCluster::stop() {
  std::vector<pid_t> pids;
  for (const char* file : {"/slurmd.pid", "/slurmctld.pid", "/munge/munged.pid"}) {
    const std::string text = read(dir_ + file);
    if (text.empty()) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(text));
    if (pid > 0 && ::kill(pid, SIGTERM) == 0) pids.push_back(pid);
  }
  for (const pid_t pid : pids) {
    for (int i = 0; i < 100 && running(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (running(pid)) ::kill(pid, SIGKILL);
  }
  for (const char* file : {"/slurmd.pid", "/slurmctld.pid", "/munge/munged.pid"}) std::remove((dir_ + file).c_str());
}

std::string SlurmCluster::logs() const {
  std::string text;
  for (const char* name : {"munged.log", "slurmctld.log", "slurmd.log"}) {
    std::string log = read(dir_ + "/log/" + name);
    if (log.size() > 2000) log = "..." + log.substr(log.size() - 2000);
    text += "\n--- " + std::string(name) + ":\n" + log;
  }
  return text;
}

}  // namespace kmidi::testing
