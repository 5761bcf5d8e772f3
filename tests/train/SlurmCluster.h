#pragma once
// A one-node Slurm cluster (slurmctld, slurmd and a munged of its own) in a
// temporary folder, on free ports, for tests of srun and sbatch. Follows
// /work/shared/LAUNCHERS.md; needs root, as the daemons run as root.

#include <map>
#include <string>

namespace kmidi::testing {

class SlurmCluster {
 public:
  /// Starts the daemons and waits until the node is idle. Throws
  /// std::runtime_error with the daemons' logs when they do not come up.
  explicit SlurmCluster(const std::string& dir);
  /// Stops the daemons by the PIDs in their pid files.
  ~SlurmCluster();
  SlurmCluster(const SlurmCluster&) = delete;
  SlurmCluster& operator=(const SlurmCluster&) = delete;

  /// What Slurm's commands need to find this cluster.
  std::map<std::string, std::string> env() const { return {{"SLURM_CONF", conf_}}; }
  const std::string& dir() const { return dir_; }
  /// The last lines of every daemon log, for failure messages.
  std::string logs() const;

 private:
  void stop();
  std::string dir_, conf_;
};

}  // namespace kmidi::testing
