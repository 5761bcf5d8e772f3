#pragma once
// The multi-process machinery behind DistributedContext: the rendezvous store,
// the c10d process group (Gloo or NCCL) and the watchdog, with collectives
// whose waits end in PeerFailure instead of hanging. Private to train/.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/intrusive_ptr.h>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <memory>
#include <string>

#include "core/TorchCompat.h"
#include "train/DistributedEnv.h"
#include "train/detail/PeerProcesses.h"
#include "train/detail/Watchdog.h"

namespace c10d {
class Store;
}

namespace kmidi::train::detail {

class Collectives {
 public:
  /// Connects to (or, on rank 0 without torchrun's agent, hosts) the TCPStore
  /// at the launch's master address, waits until every rank has joined
  /// (PeerFailure listing the missing ranks after the timeout), builds the
  /// process group of `backend` ("gloo" or "nccl") and starts the watchdog.
  Collectives(const LaunchEnvironment& launch, const std::string& backend, c10::Device device,
              double timeout_s);
  /// A clean shutdown unless a failure was seen or an exception other than a
  /// stop on request is unwinding: then the process group and the store are
  /// abandoned, never waited for, and the other ranks are told of the failure.
  ~Collectives();
  Collectives(const Collectives&) = delete;
  Collectives& operator=(const Collectives&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  const std::string& backend() const { return backend_; }
  /// Where tensors handed to the collectives must live: the CPU for Gloo,
  /// the process's GPU for NCCL.
  c10::Device comm_device() const { return comm_device_; }

  /// Starts a sum all-reduce of a dense contiguous tensor, in place.
  c10::intrusive_ptr<c10d::Work> all_reduce(at::Tensor& tensor);
  /// Starts a broadcast of `tensor` from rank `root`, in place.
  c10::intrusive_ptr<c10d::Work> broadcast(at::Tensor& tensor, int root);
  /// Waits for `work`. Throws PeerFailure naming the rank when a peer died,
  /// hung or aborted, or when the collective failed or timed out. `what`
  /// names the collective in messages ("gradient bucket 3").
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what);
  /// Throws PeerFailure if a failure has been seen.
  void check_healthy();

  /// Records `reason` as this rank's failure and tells the other ranks (bounded wait).
  void abort(const std::string& reason);
  /// Marks this rank's coming exit as a stop on request: the destructor then
  /// shuts down cleanly and publishes "stopped on request: <reason>" as the
  /// rank's exit. Ignored once a failure was seen.
  void stop_on_request(const std::string& reason);

 private:
  void connect_store(const LaunchEnvironment& launch);
  void join(const LaunchEnvironment& launch);
  void create_group(c10::Device device);
  [[noreturn]] void fail_collective(const std::string& what, const std::string& error);
  /// After a transport error: the peer it came from, named from /proc (same
  /// machine) or from heartbeats that stay still for two intervals; throws
  /// PeerFailure when one is found.
  void name_lost_peer(const std::string& what, const std::string& error);
  /// While a stop signal is pending: fails when a peer has ended or is stopped,
  /// so that a graceful stop never blocks on a peer that will not answer.
  void check_peers_while_stopping(const std::string& what, std::chrono::steady_clock::time_point waiting_since,
                                  bool& probed);
  /// What the store says after a failure, read on a thread of its own and
  /// bounded by `window` (the store may be as dead as the peer).
  struct StoreView {
    bool answered = false;
    std::string abort_reasons;  ///< posted by ranks that failed with an error
    std::vector<int> exited;    ///< ranks that finished cleanly
    std::vector<int> silent;    ///< ranks whose heartbeat stayed still for all of `window`
  };
  StoreView look_at_store(std::chrono::milliseconds window);
  [[noreturn]] void fail_now(const std::string& message);
  /// Records `message` as this rank's failure and posts it for the other ranks, once.
  void fail_locally(const std::string& message);
  void post_abort(const std::string& message);
  bool has_failure() const;
  /// Announces this rank's exit; rank 0 keeps serving the store until every
  /// rank has finished, at most `serve_for`.
  void shutdown(std::chrono::milliseconds serve_for);
  void abandon();

  int rank_ = 0, world_size_ = 1;
  std::string backend_;
  c10::Device comm_device_{c10::kCPU};
  FailureTimings timings_;
  bool hosts_store_ = false;
  std::string store_owner_;  ///< "rank 0 at host:port" or "torchrun's agent at host:port"
  c10::intrusive_ptr<c10d::Store> store_;           ///< this attempt's prefix, for the training thread
  c10::intrusive_ptr<c10d::Store> server_;          ///< the TCPStore that serves (rank 0 without agent)
  c10::intrusive_ptr<compat::CollectiveBackend> group_;
  std::unique_ptr<Watchdog> watchdog_;
  PeerProcesses peers_;
  bool aborted_ = false;
  std::string stop_reason_;  ///< set by stop_on_request
};

}  // namespace kmidi::train::detail
