#pragma once
// Who started this process, and what the launcher says about its place in a
// data-parallel job. Torch-free: plain parsing of environment variables.
//
// Detection rules (the innermost launcher wins, because every launcher's
// children inherit the variables of the launchers around it):
//   1. torchrun, or any launcher with torchrun's variables (Kubernetes'
//      PyTorchJob without torchrun, DeepSpeed, a hand-written script): RANK or
//      WORLD_SIZE is set. Needs RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT;
//      LOCAL_RANK and LOCAL_WORLD_SIZE default to RANK and WORLD_SIZE (one
//      node). TORCHELASTIC_USE_AGENT_STORE=True means torchrun's agent already
//      hosts the TCPStore on MASTER_PORT: every rank, rank 0 included, connects
//      as a client. TORCHELASTIC_RESTART_COUNT counts torchrun's restarts.
//   2. Open MPI's mpirun: OMPI_COMM_WORLD_SIZE is set. Rank, size, local rank
//      and local size come from OMPI_COMM_WORLD_*. mpirun sets no rendezvous
//      address: MASTER_ADDR, else distributed.master_addr, else 127.0.0.1 when
//      every rank runs on this node (local size == size), else an error. The
//      port: MASTER_PORT, else distributed.master_port.
//   3. Slurm's srun: SLURM_PROCID and SLURM_STEP_ID are set (a batch script
//      itself has SLURM_PROCID=0 but no step: it is a single process). World
//      size: SLURM_STEP_NUM_TASKS, else SLURM_NTASKS; local rank: SLURM_LOCALID;
//      local world size: this node's entry (SLURM_NODEID) of
//      SLURM_STEP_TASKS_PER_NODE, else SLURM_NTASKS_PER_NODE, else
//      SLURM_TASKS_PER_NODE. Rendezvous host: MASTER_ADDR, else the first host
//      of SLURM_STEP_NODELIST (else SLURM_JOB_NODELIST, SLURM_NODELIST), where
//      task 0 runs. Port: MASTER_PORT, else distributed.master_port.
//      SLURM_RESTART_COUNT counts requeues.
//   4. Otherwise a single process.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace kmidi::train {

/// Reads one environment variable; nullopt when unset.
using EnvironmentLookup = std::function<std::optional<std::string>(const std::string& name)>;

/// The real process environment (getenv).
EnvironmentLookup process_environment();

/// A fixed environment, for tests and for launching children.
EnvironmentLookup fixed_environment(std::map<std::string, std::string> variables);

/// Values the configuration supplies where a launcher sets none (mpirun, srun).
struct LaunchDefaults {
  std::string master_addr;    ///< empty: 127.0.0.1 when every rank is on this node
  int64_t master_port = 29500;
};

/// What the launcher says about this process.
struct LaunchEnvironment {
  /// "torchrun", "environment" (torchrun's variables without torchrun's agent),
  /// "mpirun", "slurm" or "single process".
  std::string launcher = "single process";
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;   ///< rendezvous host (empty for a single process)
  int master_port = 0;
  /// torchrun's agent hosts the store; rank 0 connects to it instead of serving one.
  bool agent_store = false;
  /// How many times the launcher restarted the job (torchrun restarts, Slurm requeues).
  int restart_count = 0;
  /// Where each value came from, e.g. "master_addr from SLURM_STEP_NODELIST"; for logs.
  std::string origin;

  bool distributed() const { return world_size > 1; }
};

/// Reads the launcher's variables (see the rules at the top of this file).
/// Throws UsageError for an inconsistent environment, naming the variables:
/// WORLD_SIZE without MASTER_ADDR, RANK >= WORLD_SIZE, a non-numeric value,
/// a local rank outside the local world, an unparsable Slurm node list.
LaunchEnvironment detect_launch_environment(const EnvironmentLookup& env, const LaunchDefaults& defaults);

/// Throws UsageError when the config expects a world size (non-zero) other
/// than the launcher's: a config's world size is a promise, never a hint.
void check_world_size(const LaunchEnvironment& launch, int64_t configured_world_size);

/// The CUDA device index of this process: its local rank. Throws UsageError
/// when the local rank has no GPU of its own among `visible_gpus`.
int cuda_device_index(const LaunchEnvironment& launch, int visible_gpus);

}  // namespace kmidi::train
