#include "tests/train/DriverJobs.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace kmidi::testing {

std::string driver_path() { return std::string(KMIDI_BINARY_DIR) + "/kmidi_distributed_driver"; }

std::vector<std::string> driver_data_args() {
  const std::string data = std::string(KMIDI_SOURCE_DIR) + "/data/pop909-sample/";
  return {"--data", data + "001.mid", "--data", data + "002.mid"};
}

std::string Job::params(int rank) const { return dir + "/params." + std::to_string(rank) + ".pt"; }

namespace {

std::vector<std::string> command(const std::vector<std::string>& args, const std::string& dir) {
  std::vector<std::string> argv{driver_path()};
  for (const auto& a : driver_data_args()) argv.push_back(a);
  argv.push_back("--out");
  argv.push_back(dir + "/params.{rank}.pt");
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

c10::Dict<c10::IValue, c10::IValue> load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing parameter file " << path;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toGenericDict();
}

}  // namespace

Job run_reference(const std::vector<std::string>& args, const std::string& dir, double timeout_s) {
  Job job{dir, {}};
  job.ranks.push_back(run_process(command(args, dir), {}, dir, "reference", timeout_s));
  return job;
}

std::map<std::string, std::string> launcher_env(EnvStyle style, int rank, int world, int port) {
  const std::string r = std::to_string(rank), w = std::to_string(world);
  if (style == EnvStyle::kTorchrun) {
    return {{"RANK", r}, {"WORLD_SIZE", w}, {"LOCAL_RANK", r}, {"LOCAL_WORLD_SIZE", w},
            {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)},
            {"TORCHELASTIC_RUN_ID", "test"}, {"TORCHELASTIC_RESTART_COUNT", "0"},
            {"TORCHELASTIC_USE_AGENT_STORE", "False"}};
  }
  // srun -N1 -n<world> on a node called localhost; the port comes from MASTER_PORT as the
  // batch script in cluster/ exports it.
  return {{"SLURM_PROCID", r}, {"SLURM_LOCALID", r}, {"SLURM_NTASKS", w}, {"SLURM_STEP_NUM_TASKS", w},
          {"SLURM_STEP_ID", "0"}, {"SLURM_NODEID", "0"}, {"SLURM_STEP_TASKS_PER_NODE", w},
          {"SLURM_TASKS_PER_NODE", w}, {"SLURM_JOB_NODELIST", "localhost"}, {"SLURM_STEP_NODELIST", "localhost"},
          {"MASTER_PORT", std::to_string(port)}};
}

Job run_ranks(int world, const std::vector<std::string>& args, const std::string& dir, EnvStyle style,
              const std::map<std::string, std::string>& extra_env, double timeout_s) {
  const int port = free_port();
  std::vector<Process> processes;
  for (int r = 0; r < world; ++r) {
    auto env = launcher_env(style, r, world, port);
    for (const auto& [k, v] : extra_env) env[k] = v;
    processes.push_back(Process::start(command(args, dir), env, dir, "rank" + std::to_string(r)));
  }
  Job job{dir, {}};
  const double deadline = now_seconds() + timeout_s;
  for (auto& p : processes) job.ranks.push_back(p.wait(std::max(0.1, deadline - now_seconds())));
  return job;
}

double max_parameter_difference(const std::string& a, const std::string& b) {
  const auto left = load(a), right = load(b);
  EXPECT_EQ(left.size(), right.size()) << a << " vs " << b;
  double worst = 0.0;
  for (const auto& entry : left) {
    const std::string name = entry.key().toStringRef();
    if (!right.contains(entry.key())) {
      ADD_FAILURE() << name << " is in " << a << " but not in " << b;
      return std::numeric_limits<double>::infinity();
    }
    const at::Tensor x = entry.value().toTensor().to(torch::kFloat64);
    const at::Tensor y = right.at(entry.key()).toTensor().to(torch::kFloat64);
    if (x.sizes() != y.sizes()) {
      ADD_FAILURE() << name << " has shape " << x.sizes() << " in " << a << " but " << y.sizes() << " in " << b;
      return std::numeric_limits<double>::infinity();
    }
    worst = std::max(worst, (x - y).abs().max().item<double>());
  }
  return worst;
}

std::vector<double> parameter_values(const std::string& file, const std::string& name) {
  const auto dict = load(file);
  const at::Tensor t = dict.at(c10::IValue(name)).toTensor().to(torch::kFloat64).contiguous().reshape({-1});
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

std::vector<std::string> lines_starting_with(const std::string& text, const std::string& prefix) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) lines.push_back(line);
  }
  return lines;
}

}  // namespace kmidi::testing
