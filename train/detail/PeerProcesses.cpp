#include "train/detail/PeerProcesses.h"

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace kmidi::train::detail {
namespace {

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

/// State letter and start time from /proc/<pid>/stat; false when the process is gone.
bool read_stat(long pid, char& state, unsigned long long& start_time) {
  const std::string text = first_line("/proc/" + std::to_string(pid) + "/stat");
  const size_t comm_end = text.rfind(')');  // the command name may hold spaces and parentheses
  if (comm_end == std::string::npos) return false;
  std::istringstream fields(text.substr(comm_end + 1));
  std::string field;
  // Fields from 3 (state) on; the start time is field 22.
  for (int index = 3; index <= 22 && fields >> field; ++index) {
    if (index == 3) state = field.empty() ? '?' : field[0];
    if (index == 22) {
      start_time = std::stoull(field);
      return true;
    }
  }
  return false;
}

std::vector<uint8_t> bytes(const std::string& text) { return std::vector<uint8_t>(text.begin(), text.end()); }

}  // namespace

ProcessIdentity ProcessIdentity::of_this_process() {
  ProcessIdentity self;
  char ns[128] = {};
  const ssize_t n = ::readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
  self.machine = first_line("/proc/sys/kernel/random/boot_id") + "/" + (n > 0 ? std::string(ns, static_cast<size_t>(n)) : "");
  self.pid = static_cast<long>(::getpid());
  char state = '?';
  if (!read_stat(self.pid, state, self.start_time)) self.start_time = 0;
  return self;
}

std::string ProcessIdentity::serialize() const {
  return std::to_string(pid) + " " + std::to_string(start_time) + " " + machine;
}

ProcessIdentity ProcessIdentity::parse(const std::string& text) {
  ProcessIdentity identity;
  std::istringstream in(text);
  in >> identity.pid >> identity.start_time;
  std::getline(in >> std::ws, identity.machine);
  return identity;
}

PeerProcessState PeerProcesses::state_of(const ProcessIdentity& identity) {
  char state = '?';
  unsigned long long start_time = 0;
  if (!read_stat(identity.pid, state, start_time) || start_time != identity.start_time) return PeerProcessState::kGone;
  // Z: exited, not yet reaped by its parent (torchrun's agent reaps once per monitor interval).
  if (state == 'Z' || state == 'X' || state == 'x') return PeerProcessState::kGone;
  if (state == 'T' || state == 't') return PeerProcessState::kStopped;
  return PeerProcessState::kRunning;
}

void PeerProcesses::publish(c10d::Store& store, int rank) {
  const ProcessIdentity self = ProcessIdentity::of_this_process();
  rank_ = rank;
  if (self.start_time == 0 || self.machine.empty()) return;  // no /proc: rely on heartbeats alone
  machine_key_ = "machine/" + self.machine;
  const int64_t index = store.add(machine_key_ + "/count", 1);
  store.set(machine_key_ + "/" + std::to_string(index), bytes(std::to_string(rank) + " " + self.serialize()));
}

void PeerProcesses::learn_local_peers(c10d::Store& store) {
  if (machine_key_.empty()) return;
  const int64_t count = store.add(machine_key_ + "/count", 0);
  for (int64_t i = 1; i <= count; ++i) {
    const auto value = store.get(machine_key_ + "/" + std::to_string(i));
    std::istringstream in(std::string(value.begin(), value.end()));
    LocalPeer peer;
    std::string identity;
    in >> peer.rank;
    std::getline(in >> std::ws, identity);
    if (peer.rank == rank_) continue;
    peer.identity = ProcessIdentity::parse(identity);
    peers_.push_back(peer);
  }
}

std::vector<std::pair<int, std::string>> PeerProcesses::lost(bool count_stopped) const {
  std::vector<std::pair<int, std::string>> lost;
  for (const LocalPeer& peer : peers_) {
    const PeerProcessState state = state_of(peer.identity);
    const std::string who = "rank " + std::to_string(peer.rank) + " (pid " + std::to_string(peer.identity.pid) +
                            " on this machine)";
    if (state == PeerProcessState::kGone) lost.emplace_back(peer.rank, who + " has ended");
    if (state == PeerProcessState::kStopped && count_stopped) lost.emplace_back(peer.rank, who + " is stopped");
  }
  return lost;
}

}  // namespace kmidi::train::detail
