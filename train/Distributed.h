#pragma once
// The trainer's view of a data-parallel job: who this process is, which
// device it owns, and the collective operations training needs. One object
// per process, built from the launcher's environment (torchrun, Slurm,
// mpirun) or as a single process when no launcher is present.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/Config.h"

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
  double bucket_mb = 25.0;   ///< gradient bucket size for overlapped all-reduce
  bool find_unused_parameters = false;
  std::string master_addr;   ///< when the launcher sets none (mpirun); default: 127.0.0.1
  int64_t master_port = 29500;
  void visit(config::Visitor& v) override;
};

/// Synchronises gradients across ranks while backward runs. Sums (not means):
/// the trainer normalises the loss by the global number of units beforehand.
class GradientSynchronizer {
 public:
  virtual ~GradientSynchronizer();
  /// Whether the next backward pass should communicate. False on gradient
  /// accumulation micro-steps other than the last.
  virtual void set_enabled(bool enabled) = 0;
  /// Blocks until every bucket of the last backward is reduced and written back.
  virtual void finish() = 0;
};

class DistributedContext {
 public:
  virtual ~DistributedContext();

  /// Builds the context from the environment. `device` is "auto", "cpu" or
  /// "cuda". Without launcher variables this is a single process.
  static std::shared_ptr<DistributedContext> create(const DistributedConfig& config,
                                                    const std::string& device);

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }
  bool is_main() const { return rank_ == 0; }
  bool distributed() const { return world_size_ > 1; }
  c10::Device device() const { return device_; }
  /// e.g. "torchrun", "slurm", "mpirun", "single process".
  const std::string& launcher() const { return launcher_; }

  /// Sums each value across ranks (metrics, unit counts).
  virtual void all_reduce_sum(std::vector<double>& values) = 0;
  /// Copies rank 0's parameters and buffers into every rank's module.
  virtual void broadcast_module(torch::nn::Module& module) = 0;
  virtual void barrier() = 0;
  /// Hooks gradient synchronisation onto `module`'s parameters.
  virtual std::unique_ptr<GradientSynchronizer> synchronize_gradients(torch::nn::Module& module) = 0;

 protected:
  int rank_ = 0, world_size_ = 1, local_rank_ = 0;
  c10::Device device_{c10::kCPU};
  std::string launcher_ = "single process";
};

}  // namespace kmidi::train
