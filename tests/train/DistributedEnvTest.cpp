// Launcher detection from environment variables: the values each launcher
// sets (as recorded from torchrun 1.13, srun 22.05 and Open MPI 4.1 on this
// machine, see /work/shared/LAUNCHERS.md), the precedence between them, and
// every inconsistency by its message.

#include <gtest/gtest.h>

#include "core/Errors.h"
#include "train/DistributedEnv.h"

namespace kmidi::train {
namespace {

using Vars = std::map<std::string, std::string>;

LaunchEnvironment detect(const Vars& vars, LaunchDefaults defaults = {}) {
  return detect_launch_environment(fixed_environment(vars), defaults);
}

void expect_error(const Vars& vars, const std::string& substring, LaunchDefaults defaults = {}) {
  try {
    const auto launch = detect(vars, defaults);
    ADD_FAILURE() << "no error; got launcher " << launch.launcher << " rank " << launch.rank;
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(substring), std::string::npos) << e.what();
  }
}

// What torchrun --nproc_per_node 2 gives local rank 1 (recorded from /usr/bin/torchrun).
Vars torchrun_rank1() {
  return {{"GROUP_RANK", "0"},          {"GROUP_WORLD_SIZE", "1"},  {"LOCAL_RANK", "1"},
          {"LOCAL_WORLD_SIZE", "2"},    {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29731"},
          {"OMP_NUM_THREADS", "1"},     {"RANK", "1"},              {"ROLE_RANK", "1"},
          {"ROLE_WORLD_SIZE", "2"},     {"TORCHELASTIC_MAX_RESTARTS", "0"},
          {"TORCHELASTIC_RESTART_COUNT", "0"}, {"TORCHELASTIC_RUN_ID", "none"},
          {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"WORLD_SIZE", "2"}};
}

// What `srun -N1 -n2` gives task 1 (recorded from the one-node Slurm).
Vars srun_task1() {
  return {{"SLURM_JOB_ID", "1"},          {"SLURM_JOB_NODELIST", "vm"},     {"SLURM_LOCALID", "1"},
          {"SLURM_NNODES", "1"},          {"SLURM_NODEID", "0"},            {"SLURM_NODELIST", "vm"},
          {"SLURM_NPROCS", "2"},          {"SLURM_NTASKS", "2"},            {"SLURM_PROCID", "1"},
          {"SLURM_STEPID", "0"},          {"SLURM_STEP_ID", "0"},           {"SLURM_STEP_NODELIST", "vm"},
          {"SLURM_STEP_NUM_NODES", "1"},  {"SLURM_STEP_NUM_TASKS", "2"},    {"SLURM_STEP_TASKS_PER_NODE", "2"},
          {"SLURM_TASKS_PER_NODE", "2"}};
}

Vars mpirun_rank1() {
  return {{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
          {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}, {"OMPI_COMM_WORLD_NODE_RANK", "0"}};
}

TEST(LaunchEnvironment, NoLauncherIsASingleProcess) {
  const auto launch = detect({{"HOME", "/root"}});
  EXPECT_EQ(launch.launcher, "single process");
  EXPECT_EQ(launch.world_size, 1);
  EXPECT_FALSE(launch.distributed());
}

TEST(LaunchEnvironment, Torchrun) {
  const auto launch = detect(torchrun_rank1());
  EXPECT_EQ(launch.launcher, "torchrun");
  EXPECT_EQ(launch.rank, 1);
  EXPECT_EQ(launch.world_size, 2);
  EXPECT_EQ(launch.local_rank, 1);
  EXPECT_EQ(launch.local_world_size, 2);
  EXPECT_EQ(launch.master_addr, "127.0.0.1");
  EXPECT_EQ(launch.master_port, 29731);
  EXPECT_TRUE(launch.agent_store);
  EXPECT_EQ(launch.restart_count, 0);
}

TEST(LaunchEnvironment, TorchrunStandaloneHasNoAgentStoreAndCountsRestarts) {
  auto vars = torchrun_rank1();
  vars["TORCHELASTIC_USE_AGENT_STORE"] = "False";
  vars["TORCHELASTIC_RESTART_COUNT"] = "3";
  const auto launch = detect(vars);
  EXPECT_FALSE(launch.agent_store);
  EXPECT_EQ(launch.restart_count, 3);
}

TEST(LaunchEnvironment, TorchrunVariablesWithoutTheAgentAreAPlainEnvironmentLaunch) {
  const auto launch = detect({{"RANK", "0"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "2000"}});
  EXPECT_EQ(launch.launcher, "environment");
  EXPECT_FALSE(launch.agent_store);
  // Without LOCAL_RANK: one node assumed.
  EXPECT_EQ(launch.local_rank, 0);
  EXPECT_EQ(launch.local_world_size, 4);
  EXPECT_NE(launch.origin.find("no LOCAL_RANK"), std::string::npos);
}

TEST(LaunchEnvironment, WorldSizeOneNeedsNoRendezvous) {
  const auto launch = detect({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"LOCAL_RANK", "0"}});
  EXPECT_FALSE(launch.distributed());
  EXPECT_TRUE(launch.master_addr.empty());
}

TEST(LaunchEnvironment, TorchrunInconsistencies) {
  expect_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}, "WORLD_SIZE=2 is set but MASTER_ADDR is not");
  expect_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}, "MASTER_ADDR=h is set but MASTER_PORT is not");
  expect_error({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}},
               "RANK=2 must be in [0, WORLD_SIZE=2)");
  expect_error({{"RANK", "-1"}, {"WORLD_SIZE", "2"}}, "RANK=-1 must be in [0, WORLD_SIZE=2)");
  expect_error({{"RANK", "0"}}, "RANK=0 is set but WORLD_SIZE is not");
  expect_error({{"WORLD_SIZE", "2"}}, "WORLD_SIZE=2 is set but RANK is not");
  expect_error({{"RANK", "x"}, {"WORLD_SIZE", "2"}}, "RANK='x' is not an integer");
  expect_error({{"RANK", "0"}, {"WORLD_SIZE", "2 "}}, "WORLD_SIZE='2 ' is not an integer");
  expect_error({{"RANK", "0"}, {"WORLD_SIZE", "0"}}, "WORLD_SIZE=0 must be at least 1");
  auto vars = torchrun_rank1();
  vars["LOCAL_RANK"] = "2";
  expect_error(vars, "LOCAL_RANK=2 must be in [0, LOCAL_WORLD_SIZE=2)");
  vars = torchrun_rank1();
  vars["LOCAL_WORLD_SIZE"] = "3";
  expect_error(vars, "LOCAL_WORLD_SIZE=3 must be in [1, WORLD_SIZE=2]");
  vars = torchrun_rank1();
  vars["MASTER_PORT"] = "70000";
  expect_error(vars, "MASTER_PORT=70000 is not a TCP port");
  // The launcher is named in every message.
  expect_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"TORCHELASTIC_RUN_ID", "x"}}, "(torchrun launch environment)");
}

TEST(LaunchEnvironment, Slurm) {
  const auto launch = detect(srun_task1(), {"", 29600});
  EXPECT_EQ(launch.launcher, "slurm");
  EXPECT_EQ(launch.rank, 1);
  EXPECT_EQ(launch.world_size, 2);
  EXPECT_EQ(launch.local_rank, 1);
  EXPECT_EQ(launch.local_world_size, 2);
  EXPECT_EQ(launch.master_addr, "vm");
  EXPECT_EQ(launch.master_port, 29600);
  EXPECT_FALSE(launch.agent_store);
}

TEST(LaunchEnvironment, SlurmMultiNodeTakesTheFirstNodeAndThisNodesTaskCount) {
  auto vars = srun_task1();
  vars["SLURM_STEP_NODELIST"] = "gpu[07-09,12],login1";
  vars["SLURM_JOB_NODELIST"] = "gpu[01-20],login1";
  vars["SLURM_STEP_TASKS_PER_NODE"] = "4(x2),2(x2),1";
  vars["SLURM_STEP_NUM_TASKS"] = "13";
  vars["SLURM_NTASKS"] = "64";
  vars["SLURM_NODEID"] = "3";
  vars["SLURM_PROCID"] = "12";
  vars["SLURM_LOCALID"] = "1";
  vars["SLURM_RESTART_COUNT"] = "2";
  vars["MASTER_PORT"] = "31000";
  const auto launch = detect(vars);
  EXPECT_EQ(launch.master_addr, "gpu07");  // the step's first node, not the job's
  EXPECT_EQ(launch.world_size, 13);       // the step's task count, not the job's
  EXPECT_EQ(launch.local_world_size, 2);  // node 3's entry of 4,4,2,2,1
  EXPECT_EQ(launch.master_port, 31000);   // MASTER_PORT wins over the config
  EXPECT_EQ(launch.restart_count, 2);
}

TEST(LaunchEnvironment, SlurmFallsBackToJobValuesAndHonoursMasterAddr) {
  Vars vars = {{"SLURM_PROCID", "0"}, {"SLURM_STEP_ID", "0"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "0"},
               {"SLURM_NTASKS_PER_NODE", "4"}, {"SLURM_TASKS_PER_NODE", "1(x8)"},
               {"SLURM_JOB_NODELIST", "cn[100-101]"}};
  auto launch = detect(vars);
  EXPECT_EQ(launch.world_size, 8);
  EXPECT_EQ(launch.local_world_size, 4);  // SLURM_NTASKS_PER_NODE before SLURM_TASKS_PER_NODE
  EXPECT_EQ(launch.master_addr, "cn100");
  vars["MASTER_ADDR"] = "10.1.2.3";
  EXPECT_EQ(detect(vars).master_addr, "10.1.2.3");
}

TEST(LaunchEnvironment, SlurmBatchScriptWithoutAStepIsASingleProcess) {
  // sbatch --ntasks=2: the batch script sees SLURM_PROCID=0 and SLURM_NTASKS=2 but is one process.
  const auto launch = detect({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "0"},
                              {"SLURM_TASKS_PER_NODE", "2"}, {"SLURM_JOB_NODELIST", "vm"}});
  EXPECT_EQ(launch.launcher, "single process");
}

TEST(LaunchEnvironment, SlurmInconsistencies) {
  auto vars = srun_task1();
  vars.erase("SLURM_STEP_NUM_TASKS");
  vars.erase("SLURM_NTASKS");
  expect_error(vars, "neither SLURM_STEP_NUM_TASKS nor SLURM_NTASKS");
  vars = srun_task1();
  vars["SLURM_PROCID"] = "2";
  expect_error(vars, "SLURM_PROCID=2 must be in [0, SLURM_STEP_NUM_TASKS=2)");
  vars = srun_task1();
  vars["SLURM_STEP_NODELIST"] = "vm[1-";
  expect_error(vars, "SLURM_STEP_NODELIST: hostlist 'vm[1-'");
  vars = srun_task1();
  vars["SLURM_NODEID"] = "1";
  expect_error(vars, "SLURM_NODEID=1 has no entry in SLURM_STEP_TASKS_PER_NODE='2'");
  vars = srun_task1();
  vars["SLURM_STEP_TASKS_PER_NODE"] = "1";
  expect_error(vars, "SLURM_LOCALID=1 must be in [0, SLURM_STEP_TASKS_PER_NODE=1)");
  vars = srun_task1();
  vars.erase("SLURM_LOCALID");
  expect_error(vars, "SLURM_PROCID is set but SLURM_LOCALID is not");
  vars = srun_task1();
  for (const char* name : {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"}) vars.erase(name);
  expect_error(vars, "the rendezvous host is unknown");
  expect_error(srun_task1(), "distributed.master_port=0 is not a TCP port", {"", 0});
}

TEST(LaunchEnvironment, OpenMpiOnOneNodeUsesLoopback) {
  const auto launch = detect(mpirun_rank1(), {"", 29777});
  EXPECT_EQ(launch.launcher, "mpirun");
  EXPECT_EQ(launch.rank, 1);
  EXPECT_EQ(launch.world_size, 2);
  EXPECT_EQ(launch.local_rank, 1);
  EXPECT_EQ(launch.local_world_size, 2);
  EXPECT_EQ(launch.master_addr, "127.0.0.1");
  EXPECT_EQ(launch.master_port, 29777);
}

TEST(LaunchEnvironment, OpenMpiOverSeveralNodesNeedsARendezvousHost) {
  auto vars = mpirun_rank1();
  vars["OMPI_COMM_WORLD_SIZE"] = "4";
  expect_error(vars, "mpirun started 4 ranks over several nodes (2 on this one) but sets no rendezvous host");
  EXPECT_EQ(detect(vars, {"head-node", 29500}).master_addr, "head-node");
  vars["MASTER_ADDR"] = "10.0.0.9";
  vars["MASTER_PORT"] = "4242";
  const auto launch = detect(vars, {"head-node", 29500});
  EXPECT_EQ(launch.master_addr, "10.0.0.9");  // MASTER_ADDR wins over the config
  EXPECT_EQ(launch.master_port, 4242);
}

TEST(LaunchEnvironment, OpenMpiInconsistencies) {
  auto vars = mpirun_rank1();
  vars.erase("OMPI_COMM_WORLD_LOCAL_RANK");
  expect_error(vars, "OMPI_COMM_WORLD_SIZE is set but OMPI_COMM_WORLD_LOCAL_RANK is not");
  vars = mpirun_rank1();
  vars["OMPI_COMM_WORLD_RANK"] = "5";
  expect_error(vars, "OMPI_COMM_WORLD_RANK=5 must be in [0, OMPI_COMM_WORLD_SIZE=2)");
  expect_error({{"OMPI_COMM_WORLD_RANK", "0"}}, "OMPI_COMM_WORLD_SIZE is missing");
}

TEST(LaunchEnvironment, PrecedenceInnermostLauncherWins) {
  // torchrun started by srun (one agent per node): the workers carry both.
  auto vars = srun_task1();
  for (const auto& [k, v] : torchrun_rank1()) vars[k] = v;
  for (const auto& [k, v] : mpirun_rank1()) vars[k] = v;
  EXPECT_EQ(detect(vars).launcher, "torchrun");
  // mpirun inside a Slurm allocation.
  vars = srun_task1();
  for (const auto& [k, v] : mpirun_rank1()) vars[k] = v;
  vars["OMPI_COMM_WORLD_SIZE"] = "2";
  EXPECT_EQ(detect(vars).launcher, "mpirun");
}

TEST(LaunchEnvironment, EmptyValuesCountAsUnset) {
  EXPECT_EQ(detect({{"RANK", ""}, {"WORLD_SIZE", ""}}).launcher, "single process");
  auto vars = torchrun_rank1();
  vars["MASTER_ADDR"] = "";
  expect_error(vars, "MASTER_ADDR is not");
}

TEST(LaunchEnvironment, ConfiguredWorldSizeMustMatchTheLauncher) {
  const auto launch = detect(torchrun_rank1());
  EXPECT_NO_THROW(check_world_size(launch, 0));
  EXPECT_NO_THROW(check_world_size(launch, 2));
  try {
    check_world_size(launch, 4);
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("distributed.world_size is 4 but torchrun started 2 processes"),
              std::string::npos)
        << e.what();
  }
  try {
    check_world_size(detect({}), 4);
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("but single process started 1 process"), std::string::npos) << e.what();
  }
}

TEST(LaunchEnvironment, LocalRankNeedsAGpuOfItsOwn) {
  auto vars = torchrun_rank1();
  const auto launch = detect(vars);
  EXPECT_EQ(cuda_device_index(launch, 2), 1);
  EXPECT_EQ(cuda_device_index(launch, 8), 1);
  try {
    cuda_device_index(launch, 1);
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("local rank 1 (torchrun, 2 processes on this node) has no GPU of its own: 1 visible"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace kmidi::train
