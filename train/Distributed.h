#pragma once
// The trainer's view of a data-parallel job: who this process is, which
// device it owns, and the collective operations training needs. One object
// per process, built from the launcher's environment (torchrun, Slurm,
// mpirun; see train/DistributedEnv.h for the detection rules) or as a single
// process when no launcher is present.
//
// Failure behaviour: in a job of several processes, every process sends a
// heartbeat through the rendezvous store; rank 0 watches every rank, the others
// watch rank 0. A rank that stops (killed, crashed, stopped) is declared lost
// after min(timeout_s / 2, 20 s) without a heartbeat; a collective that waits
// longer than timeout_s fails (a rank alive but no longer taking part). A
// transport error (a peer's connection reset) names the peer at once when it
// ran on this machine (its process has ended, seen in /proc), else within two
// heartbeat intervals; while a stop signal (SIGTERM, SIGINT) is pending, a
// wait for a peer that has ended or is stopped fails at once too. Either way
// every other rank throws kmidi::PeerFailure naming the rank, and a rank that
// leaves with an exception tells the others at once (a stop on request, see
// stop_on_request(), is no failure: the ranks end cleanly). If a process does not
// stop within min(timeout_s - the heartbeat window, 5 s) of a failure (e.g.
// blocked in a GPU kernel), a last-resort thread ends it with exit code 5
// (kExitPeerFailed). With the defaults, all of this fits the 30 s torchrun and
// Slurm leave between SIGTERM and SIGKILL.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/Config.h"
#include "train/DistributedEnv.h"

namespace torch::nn {
class Module;
}

namespace kmidi::train {

struct DistributedConfig : config::Section {
  std::string backend = "auto";  ///< auto (NCCL on CUDA, Gloo on CPU) | gloo | nccl
  /// Expected number of processes; 0 accepts what the launcher started. A
  /// mismatch is an error at start-up, never a silent change of batch size.
  int64_t world_size = 0;
  double timeout_s = 300.0;  ///< collective and rendezvous timeout: a dead rank ends the job
  /// Gradient bucket size for overlapped all-reduce, in MiB: PyTorch's 25 on
  /// both backends. Smaller Gloo buckets shorten the all-reduce left after
  /// backward but cost more in the whole step (4 MiB: 8% slower 2-rank steps
  /// on a 20 M-parameter model, BENCHMARKS.md).
  double bucket_mb = 25.0;
  bool find_unused_parameters = false;
  std::string master_addr;   ///< when the launcher sets none (mpirun); default: 127.0.0.1
  int64_t master_port = 29500;
  void visit(config::Visitor& v) override;
};

/// Synchronises gradients across ranks while backward runs. Sums (not means):
/// the trainer normalises the loss by the global number of units beforehand.
///
/// Protocol per optimizer step: set_enabled(false) before each gradient
/// accumulation micro-step but the last (no communication; gradients
/// accumulate locally in .grad), set_enabled(true) before the last backward,
/// then finish() after it; afterwards every rank's .grad holds the sum over
/// ranks of its accumulated gradients.
class GradientSynchronizer {
 public:
  virtual ~GradientSynchronizer();
  /// Whether the next backward pass should communicate. False on gradient
  /// accumulation micro-steps other than the last.
  virtual void set_enabled(bool enabled) = 0;
  /// Blocks until every bucket of the last backward is reduced and written back.
  /// Does nothing while disabled.
  virtual void finish() = 0;
};

class DistributedContext {
 public:
  virtual ~DistributedContext();

  /// Builds the context from the environment. `device` is "auto", "cpu" or
  /// "cuda". Without launcher variables this is a single process. Also tells
  /// core/Logging the rank (only rank 0 prints info lines).
  static std::shared_ptr<DistributedContext> create(const DistributedConfig& config,
                                                    const std::string& device);
  /// As create(), from an already detected launch environment.
  static std::shared_ptr<DistributedContext> create(const DistributedConfig& config, const std::string& device,
                                                    const LaunchEnvironment& launch);

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }
  int local_world_size() const { return local_world_size_; }
  /// How many times the launcher restarted this job (torchrun restarts, Slurm requeues).
  int restart_count() const { return restart_count_; }
  bool is_main() const { return rank_ == 0; }
  bool distributed() const { return world_size_ > 1; }
  c10::Device device() const { return device_; }
  /// e.g. "torchrun", "slurm", "mpirun", "single process".
  const std::string& launcher() const { return launcher_; }
  /// "gloo", "nccl", or "none" for a single process.
  const std::string& backend() const { return backend_; }

  /// Sums each value across ranks (metrics, unit counts).
  virtual void all_reduce_sum(std::vector<double>& values) = 0;
  /// Copies rank 0's parameters and buffers into every rank's module. Throws
  /// UsageError on every rank when the modules' structures differ.
  virtual void broadcast_module(torch::nn::Module& module) = 0;
  virtual void barrier() = 0;
  /// Hooks gradient synchronisation onto `module`'s parameters that require
  /// grad at the time of this call. Call it once the module is on its device
  /// and has its final parameters (after broadcast_module); destroying the
  /// synchronizer removes the hooks.
  virtual std::unique_ptr<GradientSynchronizer> synchronize_gradients(torch::nn::Module& module) = 0;
  /// Rank 0's `value` on every rank (e.g. a run directory chosen by rank 0).
  virtual std::string broadcast_string(const std::string& value) { return value; }
  /// Tells the other ranks that this one is failing with `reason`, so they stop
  /// now instead of at the timeout. Called automatically when the context is
  /// destroyed by an exception; safe to call more than once.
  virtual void abort(const std::string& reason) {}
  /// Says that this rank ends because a stop was asked (every rank agreed on
  /// it in the same collective), not because it failed: the context, destroyed
  /// by the Interrupted thrown next, publishes "stopped on request" and shuts
  /// down cleanly, so that neither this rank nor its peers log a failure. Call
  /// it right before throwing Interrupted; a failure already seen still wins.
  virtual void stop_on_request(const std::string& reason) {}

 protected:
  int rank_ = 0, world_size_ = 1, local_rank_ = 0, local_world_size_ = 1, restart_count_ = 0;
  c10::Device device_{c10::kCPU};
  std::string launcher_ = "single process";
  std::string backend_ = "none";
};

namespace detail {
/// The context of a job of several processes (train/detail/ProcessGroupContext.cpp);
/// declared here so that this folder does not include train/detail/.
std::shared_ptr<DistributedContext> make_process_group_context(const LaunchEnvironment& launch,
                                                               const DistributedConfig& config, c10::Device device,
                                                               const std::string& backend);
}  // namespace detail

/// The device of a process of `launch`: "cpu" gives the CPU without an index
/// (never cpu:N), "cuda" gives cuda:LOCAL_RANK (UsageError without CUDA or
/// without a GPU for the local rank), "auto" is cuda when available, else cpu.
c10::Device select_device(const std::string& device, const LaunchEnvironment& launch);

}  // namespace kmidi::train
