// The real launchers (Debian's torchrun, Open MPI's mpirun, Slurm's srun and
// sbatch on a one-node cluster this test starts) running the training driver
// through the scripts in cluster/, and checks of those scripts and of the
// Kubernetes manifest. The single-process reference is the independent side.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "tests/train/DriverJobs.h"
#include "tests/train/ProcessHarness.h"
#include "tests/train/SlurmCluster.h"

namespace kmidi::testing {
namespace {

const std::string kCluster = std::string(KMIDI_SOURCE_DIR) + "/cluster/";
const std::vector<std::string> kTraining{"--optimizer", "sgd", "--steps", "3", "--global-batch", "8",
                                         "--bucket-mb", "0.002", "--timeout", "30", "--report"};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<std::string> driver_command(const std::string& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = driver_data_args();
  args.insert(args.end(), kTraining.begin(), kTraining.end());
  args.push_back("--out");
  args.push_back(dir + "/params.{rank}.pt");
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Job reference() {
  const Job job = run_reference(kTraining, make_temp_dir("kmidi-launcher-reference"));
  EXPECT_EQ(job.ranks[0].exit_code, 0) << describe(job.ranks[0]);
  return job;
}

void expect_params_match(const Job& reference, const std::string& dir, int world = 2) {
  const Job job{dir, {}};
  for (int r = 0; r < world; ++r) EXPECT_LT(max_parameter_difference(reference.params(0), job.params(r)), 1e-6) << r;
}

// --- torchrun ------------------------------------------------------------------

std::map<std::string, std::string> torchrun_env(int port) {
  return {{"KMIDI_BIN", driver_path()}, {"KMIDI_NPROC_PER_NODE", "2"}, {"MASTER_PORT", std::to_string(port)},
          {"KMIDI_MAX_RESTARTS", "0"}, {"KMIDI_MONITOR_INTERVAL", "1"}};
}

TEST(Torchrun, TheLauncherScriptTrainsLikeOneProcess) {
  const Job expected = reference();
  const std::string dir = make_temp_dir("kmidi-torchrun");
  const auto result =
      run_process(concat({"/bin/bash", kCluster + "torchrun.sh"}, driver_command(dir)), torchrun_env(free_port()), dir,
                  "torchrun", 90);
  ASSERT_EQ(result.exit_code, 0) << describe(result);
  for (int r = 0; r < 2; ++r) {
    // torchrun's agent hosts the store: every rank is a client.
    EXPECT_TRUE(contains(result.out, "rank=" + std::to_string(r) +
                                         " world=2 local_rank=" + std::to_string(r) +
                                         " local_world=2 launcher=torchrun device=cpu backend=gloo restart=0 agent_store=1"))
        << describe(result);
  }
  expect_params_match(expected, dir);
}

TEST(Torchrun, ARestartAfterAKilledWorkerRendezvousesAfreshAndCompletes) {
  const Job expected = reference();
  const std::string dir = make_temp_dir("kmidi-torchrun-restart");
  auto env = torchrun_env(free_port());
  env["KMIDI_MAX_RESTARTS"] = "1";
  // Rank 1 is killed at step 2 of the first attempt only.
  env["KMIDI_FAULT"] = "distributed_driver.step:rank1.step2.attempt0";
  const auto result =
      run_process(concat({"/bin/bash", kCluster + "torchrun.sh"}, driver_command(dir)), env, dir, "torchrun", 120);
  ASSERT_EQ(result.exit_code, 0) << describe(result);
  EXPECT_TRUE(contains(result.out, "launcher=torchrun device=cpu backend=gloo restart=0")) << describe(result);
  EXPECT_TRUE(contains(result.out, "launcher=torchrun device=cpu backend=gloo restart=1")) << describe(result);
  expect_params_match(expected, dir);
}

/// The process of `program` that torchrun started as `rank` of the job on `port`
/// (found in /proc by its command and environment), or -1.
pid_t find_rank_process(const std::string& program, int port, int rank) {
  const auto entries = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<std::string> parts;
    for (std::string part; std::getline(in, part, '\0');) parts.push_back(part);
    return parts;
  };
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto command = entries(entry.path().string() + "/cmdline");
    if (command.empty() || command[0] != program) continue;
    const auto env = entries(entry.path().string() + "/environ");
    const auto has = [&](const std::string& variable) { return std::find(env.begin(), env.end(), variable) != env.end(); };
    if (has("RANK=" + std::to_string(rank)) && has("MASTER_PORT=" + std::to_string(port))) return std::stoi(name);
  }
  return -1;
}

TEST(Torchrun, AKilledRankIsNamedBeforeTorchrunsGraceEndsAndEveryRanksExitIsSummarised) {
  // kill -9 of rank 1 of `kmidi train` with the default distributed settings:
  // torchrun SIGTERMs rank 0 and SIGKILLs it 30 s later. Rank 0 must end by
  // itself before that, with exit code 5 naming rank 1, and the script's
  // summary must say how each rank ended.
  const std::string dir = make_temp_dir("kmidi-torchrun-kmidi-kill");
  const std::string source = KMIDI_SOURCE_DIR;
  const auto prepared = run_process({KMIDI_CLI, "prepare", "--config", source + "/configs/prepare_pop909_sample.yaml",
                                     "output.dir=" + dir + "/shards"},
                                    {}, dir, "prepare", 120);
  ASSERT_EQ(prepared.exit_code, 0) << describe(prepared);
  const int port = free_port();
  auto env = torchrun_env(port);
  env["KMIDI_BIN"] = KMIDI_CLI;
  Process torchrun = Process::start(
      {"/bin/bash", kCluster + "torchrun.sh", "train", "--config", source + "/configs/midi_generator_tiny.yaml",
       "data.dir=" + dir + "/shards", "run.output_dir=" + dir, "run.name=job", "run.threads=1",
       "run.tensorboard=false", "train.max_steps=100000", "train.log_every=1", "train.eval_every=0",
       "train.checkpoint_every=0"},
      env, dir, "torchrun");
  // Training runs once rank 0 has written a metrics row.
  const double deadline = now_seconds() + 120;
  bool training = false;
  while (!training && now_seconds() < deadline && !torchrun.poll()) {
    std::ifstream in(dir + "/job/metrics.jsonl");
    const std::string rows((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    training = contains(rows, "\"split\":\"train\"");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(training) << dir;
  const pid_t victim = find_rank_process(KMIDI_CLI, port, 1);
  ASSERT_GT(victim, 0) << "rank 1 not found in /proc";
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  const double killed = now_seconds();
  const ProcessResult result = torchrun.wait(90);
  const double took = now_seconds() - killed;
  EXPECT_NE(result.exit_code, 0) << describe(result);
  EXPECT_LT(took, 25.0) << "rank 0 did not stop by itself within torchrun's 30 s\n" << describe(result);
  EXPECT_TRUE(contains(result.err, "distributed failure: rank 1 (pid " + std::to_string(victim) +
                                       " on this machine) has ended"))
      << describe(result);
  EXPECT_TRUE(contains(result.err, "kmidi: attempt 0: rank 0 exit 5 (distributed failure), rank 1 killed by SIGKILL"))
      << describe(result);
}

// --- mpirun ------------------------------------------------------------------------

TEST(Mpirun, TwoRanksOnThisNodeTrainLikeOneProcess) {
  const Job expected = reference();
  const std::string dir = make_temp_dir("kmidi-mpirun");
  const auto result = run_process(
      concat({"/usr/bin/mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", driver_path()},
             driver_command(dir, {"--master-port", std::to_string(free_port())})),
      {}, dir, "mpirun", 90);
  ASSERT_EQ(result.exit_code, 0) << describe(result);
  EXPECT_TRUE(contains(result.out, "rank=1 world=2 local_rank=1 local_world=2 launcher=mpirun device=cpu backend=gloo"))
      << describe(result);
  EXPECT_TRUE(contains(result.out, "master=127.0.0.1:")) << describe(result);
  expect_params_match(expected, dir);
}

// --- Slurm ----------------------------------------------------------------------------

/// Waits for a batch job to end and returns its JobState and ExitCode (sbatch
/// --wait polls far too slowly for a test).
std::pair<std::string, std::string> wait_for_job(const SlurmCluster& cluster, const std::string& job_id, double timeout_s) {
  const double deadline = now_seconds() + timeout_s;
  std::string state, exit_code;
  while (now_seconds() < deadline) {
    const auto show = run_process({"/usr/bin/scontrol", "show", "job", "-o", job_id}, cluster.env(),
                                  cluster.dir() + "/log", "scontrol", 10);
    for (const std::string key : {"JobState=", "ExitCode="}) {
      const size_t at = show.out.find(key);
      if (at == std::string::npos) continue;
      const std::string value = show.out.substr(at + key.size(), show.out.find(' ', at) - at - key.size());
      (key == "JobState=" ? state : exit_code) = value;
    }
    if (state == "COMPLETED" || state == "FAILED" || state == "CANCELLED" || state == "TIMEOUT" ||
        state == "NODE_FAIL" || state == "OUT_OF_MEMORY") {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return {state, exit_code};
}

TEST(Slurm, SrunAndTheBatchScriptOnAOneNodeCluster) {
  const Job expected = reference();
  const std::string dir = make_temp_dir("kmidi-slurm");
  // The daemons must start: a cluster that cannot is a failure (with its logs), never a skip.
  SlurmCluster cluster(dir + "/cluster");

  // srun: one task per rank, the port from the config (distributed.master_port).
  const std::string srun_dir = dir + "/srun";
  std::filesystem::create_directories(srun_dir);
  const auto srun = run_process(concat({"/usr/bin/srun", "-N1", "-n2", "--kill-on-bad-exit=1", driver_path()},
                                       driver_command(srun_dir, {"--master-port", std::to_string(free_port())})),
                                cluster.env(), srun_dir, "srun", 90);
  ASSERT_EQ(srun.exit_code, 0) << describe(srun) << cluster.logs();
  EXPECT_TRUE(contains(srun.out, "rank=1 world=2 local_rank=1 local_world=2 launcher=slurm device=cpu backend=gloo"))
      << describe(srun);
  expect_params_match(expected, srun_dir);

  // The batch script parses: with its own defaults (4 GPUs per node) this GPU-less
  // cluster refuses it; sized for this node it would start.
  const std::string script = kCluster + "slurm.sbatch";
  const auto as_written = run_process({"/usr/bin/sbatch", "--test-only", script, "train"}, cluster.env(), dir,
                                      "sbatch-test-defaults", 30);
  EXPECT_NE(as_written.exit_code, 0) << describe(as_written);
  EXPECT_TRUE(contains(as_written.err, "gres")) << describe(as_written);
  const std::vector<std::string> this_node{"--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1"};
  const auto sized = run_process(concat(concat({"/usr/bin/sbatch", "--test-only"}, this_node), {script, "train"}),
                                 cluster.env(), dir, "sbatch-test", 30);
  EXPECT_EQ(sized.exit_code, 0) << describe(sized) << cluster.logs();
  EXPECT_TRUE(contains(sized.err, "to start at")) << describe(sized);

  // And it trains: sbatch runs the script, the script runs srun.
  const std::string batch_dir = dir + "/batch";
  std::filesystem::create_directories(batch_dir);
  const auto submitted = run_process(
      concat(concat(concat({"/usr/bin/sbatch", "--parsable", "--output=" + batch_dir + "/job.out",
                            "--export=ALL,KMIDI_BIN=" + driver_path()},
                           this_node),
                    {script}),
             driver_command(batch_dir)),
      cluster.env(), batch_dir, "sbatch", 30);
  ASSERT_EQ(submitted.exit_code, 0) << describe(submitted) << cluster.logs();
  const std::string job_id = submitted.out.substr(0, submitted.out.find_first_of(";\n"));
  const auto [state, exit_code] = wait_for_job(cluster, job_id, 90);
  std::ifstream log(batch_dir + "/job.out");
  const std::string job_out((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  ASSERT_EQ(state, "COMPLETED") << "exit " << exit_code << "\n" << job_out << cluster.logs();
  EXPECT_EQ(exit_code, "0:0");
  EXPECT_TRUE(contains(job_out, "kmidi: job " + job_id + " (restart 0)")) << job_out;
  EXPECT_TRUE(contains(job_out, "launcher=slurm device=cpu backend=gloo")) << job_out;
  expect_params_match(expected, batch_dir);
}

// --- scripts/bench_ddp.sh ------------------------------------------------------------------

TEST(Benchmark, WeakScalingScriptSmokeRun) {
  // Only that it runs and reports both step times and their ratio: figures
  // come from a quiet machine, not from a test.
  const std::string dir = make_temp_dir("kmidi-bench-smoke");
  const auto result = run_process({"/bin/bash", std::string(KMIDI_SOURCE_DIR) + "/scripts/bench_ddp.sh", "--smoke"},
                                  {{"KMIDI_BUILD_DIR", KMIDI_BINARY_DIR}, {"BENCH_PORT", std::to_string(free_port())},
                                   {"TMPDIR", dir}},
                                  dir, "bench", 120);
  ASSERT_EQ(result.exit_code, 0) << describe(result);
  EXPECT_EQ(lines_starting_with(result.out, "1 rank: ").size(), 1u) << result.out;
  EXPECT_EQ(lines_starting_with(result.out, "2 ranks: ").size(), 1u) << result.out;
  EXPECT_EQ(lines_starting_with(result.out, "ratio: ").size(), 1u) << result.out;
}

TEST(Benchmark, WeakScalingScriptSmokeRunOnTheGenerator) {
  // --generator times `kmidi train` itself, from its metrics.jsonl; --peer
  // adds the Python peer's runs through PyTorch's DistributedDataParallel.
  const std::string dir = make_temp_dir("kmidi-bench-generator-smoke");
  const std::string scratch = dir + "/tmp";
  std::filesystem::create_directories(scratch);
  const auto result = run_process(
      {"/bin/bash", std::string(KMIDI_SOURCE_DIR) + "/scripts/bench_ddp.sh", "--generator", "--peer", "--smoke"},
      {{"KMIDI_BUILD_DIR", KMIDI_BINARY_DIR},
       {"BENCH_PORT", std::to_string(free_port())},
       {"BENCH_PEER_PORT", std::to_string(free_port())},
       {"TMPDIR", scratch}},
      dir,
      "bench", 300);
  ASSERT_EQ(result.exit_code, 0) << describe(result);
  EXPECT_TRUE(contains(result.err, "the MIDI generator (kmidi train)")) << result.err;
  EXPECT_TRUE(contains(result.err, "(python peer, PyTorch DDP)")) << result.err;
  for (const char* line : {"1 rank: ", "2 ranks: ", "ratio: ", "control: ", "peer 1 rank: ", "peer 2 ranks: ",
                           "peer ratio: ", "peer control: "}) {
    EXPECT_EQ(lines_starting_with(result.out, line).size(), 1u) << line << "\n" << result.out;
  }
  // The temporary folder (prepared shards, run folders) is gone afterwards.
  EXPECT_TRUE(std::filesystem::is_empty(scratch)) << scratch;
}

TEST(Benchmark, WeakScalingScriptRefusesPeerOptionsWithoutTheGenerator) {
  // The peer implements the generator only; the driver has no Python twin.
  const std::string dir = make_temp_dir("kmidi-bench-peer-usage");
  for (const char* option : {"--peer", "--driver-size"}) {
    const auto result = run_process({"/bin/bash", std::string(KMIDI_SOURCE_DIR) + "/scripts/bench_ddp.sh", option},
                                    {{"KMIDI_BUILD_DIR", KMIDI_BINARY_DIR}, {"TMPDIR", dir}}, dir, "bench", 60);
    EXPECT_EQ(result.exit_code, 2) << option << "\n" << describe(result);
    EXPECT_TRUE(contains(result.err, "--driver-size and --peer need --generator")) << result.err;
  }
}

// --- scripts/check_libtorch2.sh -------------------------------------------------------------

TEST(LibTorch2Check, ScriptParsesDocumentsItselfAndRefusesUnknownArguments) {
  // The check itself needs root, network and ~20 minutes (BENCHMARKS.md has
  // its results); here only that the script parses and answers its options.
  const std::string dir = make_temp_dir("kmidi-libtorch2-check");
  const std::string script = std::string(KMIDI_SOURCE_DIR) + "/scripts/check_libtorch2.sh";
  const auto syntax = run_process({"/bin/bash", "-n", script}, {}, dir, "syntax", 30);
  EXPECT_EQ(syntax.exit_code, 0) << describe(syntax);
  const auto help = run_process({"/bin/bash", script, "--help"}, {}, dir, "help", 30);
  EXPECT_EQ(help.exit_code, 0) << describe(help);
  EXPECT_TRUE(contains(help.out, "libtorch-cuda-dev")) << describe(help);
  const auto unknown = run_process({"/bin/bash", script, "--gpu"}, {}, dir, "unknown", 30);
  EXPECT_EQ(unknown.exit_code, 2) << describe(unknown);
  EXPECT_TRUE(contains(unknown.err, "unknown argument '--gpu'")) << describe(unknown);
}

// --- the files in cluster/ ---------------------------------------------------------------

TEST(ClusterFiles, ScriptsParseAndRefuseAMissingCommand) {
  const std::string dir = make_temp_dir("kmidi-cluster-files");
  for (const char* script : {"torchrun.sh", "slurm.sbatch"}) {
    const auto syntax = run_process({"/bin/bash", "-n", kCluster + script}, {}, dir, "syntax", 30);
    EXPECT_EQ(syntax.exit_code, 0) << script << ": " << describe(syntax);
    const auto bare = run_process({"/bin/bash", kCluster + script}, {}, dir, "bare", 30);
    EXPECT_EQ(bare.exit_code, 2) << script << ": " << describe(bare);
    EXPECT_TRUE(contains(bare.err, "usage:")) << describe(bare);
  }
}

TEST(ClusterFiles, TorchrunScriptBuildsAMultiNodeCommand) {
  const std::string dir = make_temp_dir("kmidi-cluster-dry");
  const auto dry = run_process({"/bin/bash", kCluster + "torchrun.sh", "--dry-run", "train", "--config", "c.yaml"},
                               {{"KMIDI_BIN", "/opt/kmidi/kmidi"}, {"KMIDI_NNODES", "2"}, {"KMIDI_NODE_RANK", "1"},
                                {"KMIDI_NPROC_PER_NODE", "4"}, {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29600"},
                                {"TORCHRUN", "torchrun"}},
                               dir, "dry", 30);
  ASSERT_EQ(dry.exit_code, 0) << describe(dry);
  // Every worker runs through torchrun_worker.sh, which records its exit for the summary.
  EXPECT_EQ(dry.out,
            "torchrun --nnodes 2 --node_rank 1 --nproc_per_node 4 --master_addr node0 --master_port 29600 "
            "--max_restarts 3 --monitor_interval 1 --redirects 2 --tee 2 --no_python /bin/bash " +
                kCluster + "torchrun_worker.sh \\<status\\ folder\\> /opt/kmidi/kmidi train --config c.yaml \n");
}

TEST(ClusterFiles, PyTorchJobManifestHasWhatTheOperatorAndKmidiNeed) {
  const auto documents = YAML::LoadAllFromFile(kCluster + "pytorchjob.yaml");
  ASSERT_EQ(documents.size(), 2u);
  const YAML::Node& claim = documents[0];
  EXPECT_EQ(claim["apiVersion"].as<std::string>(), "v1");
  EXPECT_EQ(claim["kind"].as<std::string>(), "PersistentVolumeClaim");
  const auto modes = claim["spec"]["accessModes"].as<std::vector<std::string>>();
  EXPECT_NE(std::find(modes.begin(), modes.end(), "ReadWriteMany"), modes.end()) << "every pod mounts the run folder";

  const YAML::Node& job = documents[1];
  EXPECT_EQ(job["apiVersion"].as<std::string>(), "kubeflow.org/v1");
  EXPECT_EQ(job["kind"].as<std::string>(), "PyTorchJob");
  EXPECT_FALSE(job["metadata"]["name"].as<std::string>().empty());
  const YAML::Node spec = job["spec"];
  ASSERT_TRUE(spec["nprocPerNode"].IsScalar());
  const int nproc = std::stoi(spec["nprocPerNode"].as<std::string>());  // a string in the v1 API
  EXPECT_GE(nproc, 1);
  const YAML::Node replicas = spec["pytorchReplicaSpecs"];
  ASSERT_TRUE(replicas["Master"].IsMap());
  ASSERT_TRUE(replicas["Worker"].IsMap());
  EXPECT_EQ(replicas["Master"]["replicas"].as<int>(), 1);
  EXPECT_GE(replicas["Worker"]["replicas"].as<int>(), 1);
  const std::set<std::string> policies{"Always", "OnFailure", "Never", "ExitCode"};
  for (const char* role : {"Master", "Worker"}) {
    SCOPED_TRACE(role);
    const YAML::Node replica = replicas[role];
    EXPECT_EQ(replica["restartPolicy"].as<std::string>(), "OnFailure");  // failed pods restart and resume
    EXPECT_TRUE(policies.count(replica["restartPolicy"].as<std::string>()));
    const YAML::Node pod = replica["template"]["spec"];
    ASSERT_TRUE(pod["containers"].IsSequence());
    const YAML::Node container = pod["containers"][0];
    EXPECT_EQ(container["name"].as<std::string>(), "pytorch");  // the operator looks for this name
    EXPECT_FALSE(container["image"].as<std::string>().empty());
    const auto command = container["command"].as<std::vector<std::string>>();
    ASSERT_FALSE(command.empty());
    EXPECT_EQ(command[0], "torchrun");
    EXPECT_NE(std::find(command.begin(), command.end(), "--no_python"), command.end());
    // Debian's torchrun 1.13 under Python 3.11 crashes without both.
    for (const char* option : {"--redirects", "--tee"}) {
      const auto at = std::find(command.begin(), command.end(), option);
      ASSERT_NE(at, command.end()) << option;
      ASSERT_NE(at + 1, command.end()) << option;
      EXPECT_EQ(*(at + 1), "2") << option;
    }
    EXPECT_TRUE(contains(command.back(), "kmidi")) << command.back();
    const auto args = container["args"].as<std::vector<std::string>>();
    ASSERT_FALSE(args.empty());
    EXPECT_EQ(args[0], "train");
    EXPECT_NE(std::find(args.begin(), args.end(), "run.resume=auto"), args.end());
    EXPECT_EQ(container["resources"]["limits"]["nvidia.com/gpu"].as<int>(), nproc) << "one process per GPU";
    std::set<std::string> volumes;
    for (const auto& volume : pod["volumes"]) {
      volumes.insert(volume["name"].as<std::string>());
      if (volume["persistentVolumeClaim"]) {
        EXPECT_EQ(volume["persistentVolumeClaim"]["claimName"].as<std::string>(),
                  claim["metadata"]["name"].as<std::string>());
      }
    }
    std::set<std::string> mount_paths;
    for (const auto& mount : container["volumeMounts"]) {
      EXPECT_TRUE(volumes.count(mount["name"].as<std::string>())) << mount["name"].as<std::string>();
      mount_paths.insert(mount["mountPath"].as<std::string>());
    }
    EXPECT_TRUE(mount_paths.count("/dev/shm")) << "NCCL needs shared memory beyond the container default";
    const auto output_dir = std::find_if(args.begin(), args.end(), [](const std::string& a) {
      return a.rfind("run.output_dir=", 0) == 0;
    });
    ASSERT_NE(output_dir, args.end());
    EXPECT_TRUE(mount_paths.count(output_dir->substr(std::string("run.output_dir=").size())))
        << "checkpoints must go to the shared volume";
  }
}

}  // namespace
}  // namespace kmidi::testing
