#pragma once
// Which ranks of a job run on this machine, and whether their processes still
// run: a transport error or a stop signal can then name a dead peer at once,
// from /proc, instead of waiting for its heartbeats to go silent. Private to
// train/.

#include <c10/util/intrusive_ptr.h>

#include <string>
#include <vector>

namespace c10d {
class Store;
}

namespace kmidi::train::detail {

/// A process as seen from its machine: same machine = same boot and same PID
/// namespace; the start time tells a reused PID apart.
struct ProcessIdentity {
  std::string machine;  ///< boot id and PID namespace
  long pid = 0;
  unsigned long long start_time = 0;  ///< /proc/<pid>/stat field 22

  static ProcessIdentity of_this_process();
  std::string serialize() const;
  static ProcessIdentity parse(const std::string& text);
};

/// How a peer's process is doing, as far as this machine can tell.
enum class PeerProcessState { kRunning, kStopped, kGone };

struct LocalPeer {
  int rank = 0;
  ProcessIdentity identity;
};

class PeerProcesses {
 public:
  /// Publishes this process in `store` (keys under "machine/") and, once every
  /// rank has published (after the rendezvous), learns the ranks that share
  /// its machine: local_world_size store reads, not world_size.
  void publish(c10d::Store& store, int rank);
  void learn_local_peers(c10d::Store& store);

  /// Peers on this machine whose process ended (or, with `count_stopped`, is
  /// stopped), described for messages: "rank 1 (pid 123 on this machine) has
  /// ended". Reads /proc only; never the store.
  std::vector<std::pair<int, std::string>> lost(bool count_stopped) const;
  /// Whether other ranks run on this machine (only they can be seen in /proc).
  bool has_local_peers() const { return !peers_.empty(); }

  static PeerProcessState state_of(const ProcessIdentity& identity);

 private:
  std::string machine_key_;
  int rank_ = 0;
  std::vector<LocalPeer> peers_;  ///< other ranks on this machine
};

}  // namespace kmidi::train::detail
