#include "train/DistributedEnv.h"

#include <cerrno>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "core/Errors.h"
#include "core/Hostlist.h"

namespace kmidi::train {
namespace {

/// The variables' names a launcher uses, for messages.
struct VariableNames {
  std::string rank, world_size, local_rank, local_world_size;
};

class Reader {
 public:
  Reader(const EnvironmentLookup& env, std::string launcher) : env_(env), launcher_(std::move(launcher)) {}

  /// The value of `name`; an empty value counts as unset.
  std::optional<std::string> get(const std::string& name) const {
    auto value = env_(name);
    if (value && value->empty()) return std::nullopt;
    return value;
  }

  std::optional<long> integer(const std::string& name) const {
    const auto text = get(name);
    if (!text) return std::nullopt;
    errno = 0;
    char* end = nullptr;
    const long value = std::strtol(text->c_str(), &end, 10);
    if (errno != 0 || end == text->c_str() || *end != '\0' || value < -1000000000L || value > 1000000000L) {
      fail(name + "='" + *text + "' is not an integer");
    }
    return value;
  }

  long required_integer(const std::string& name, const std::string& why) const {
    const auto value = integer(name);
    if (!value) fail(why);
    return *value;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw UsageError(what + " (" + launcher_ + " launch environment)");
  }

  const std::string& launcher() const { return launcher_; }

 private:
  const EnvironmentLookup& env_;
  std::string launcher_;
};

bool truthy(const std::optional<std::string>& value) {
  return value && (*value == "True" || *value == "true" || *value == "1");
}

void check_port(const Reader& r, LaunchEnvironment& launch, long port, const std::string& source) {
  if (port < 1 || port > 65535) r.fail(source + "=" + std::to_string(port) + " is not a TCP port; expected 1..65535");
  launch.master_port = static_cast<int>(port);
}

/// Rules every launcher's numbers must satisfy.
void check_ranks(const Reader& r, const LaunchEnvironment& launch, const VariableNames& names) {
  if (launch.world_size < 1) {
    r.fail(names.world_size + "=" + std::to_string(launch.world_size) + " must be at least 1");
  }
  if (launch.rank < 0 || launch.rank >= launch.world_size) {
    r.fail(names.rank + "=" + std::to_string(launch.rank) + " must be in [0, " + names.world_size + "=" +
           std::to_string(launch.world_size) + ")");
  }
  if (launch.local_world_size < 1 || launch.local_world_size > launch.world_size) {
    r.fail(names.local_world_size + "=" + std::to_string(launch.local_world_size) + " must be in [1, " +
           names.world_size + "=" + std::to_string(launch.world_size) + "]");
  }
  if (launch.local_rank < 0 || launch.local_rank >= launch.local_world_size) {
    r.fail(names.local_rank + "=" + std::to_string(launch.local_rank) + " must be in [0, " +
           names.local_world_size + "=" + std::to_string(launch.local_world_size) + ")");
  }
}

LaunchEnvironment from_torchrun(const EnvironmentLookup& env) {
  const bool elastic = env("TORCHELASTIC_RUN_ID") || env("TORCHELASTIC_RESTART_COUNT") ||
                       env("TORCHELASTIC_USE_AGENT_STORE");
  Reader r(env, elastic ? "torchrun" : "environment");
  LaunchEnvironment launch;
  launch.launcher = r.launcher();
  const auto rank = r.integer("RANK");
  const auto world = r.integer("WORLD_SIZE");
  if (!world) r.fail("RANK=" + std::to_string(*rank) + " is set but WORLD_SIZE is not");
  if (!rank) r.fail("WORLD_SIZE=" + std::to_string(*world) + " is set but RANK is not");
  launch.rank = static_cast<int>(*rank);
  launch.world_size = static_cast<int>(*world);
  const auto local_rank = r.integer("LOCAL_RANK");
  const auto local_world = r.integer("LOCAL_WORLD_SIZE");
  launch.local_rank = static_cast<int>(local_rank.value_or(*rank));
  launch.local_world_size = static_cast<int>(local_world.value_or(*world));
  launch.origin = local_rank ? "ranks from RANK, WORLD_SIZE, LOCAL_RANK"
                             : "ranks from RANK, WORLD_SIZE (no LOCAL_RANK: assuming one node)";
  check_ranks(r, launch, {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"});
  launch.agent_store = truthy(r.get("TORCHELASTIC_USE_AGENT_STORE"));
  launch.restart_count = static_cast<int>(r.integer("TORCHELASTIC_RESTART_COUNT").value_or(0));
  if (launch.world_size > 1 || r.get("MASTER_ADDR")) {
    const auto addr = r.get("MASTER_ADDR");
    if (!addr) {
      r.fail("WORLD_SIZE=" + std::to_string(launch.world_size) +
             " is set but MASTER_ADDR is not; ranks need MASTER_ADDR and MASTER_PORT to find each other");
    }
    launch.master_addr = *addr;
    check_port(r, launch,
               r.required_integer("MASTER_PORT", "MASTER_ADDR=" + *addr + " is set but MASTER_PORT is not"),
               "MASTER_PORT");
    launch.origin += "; rendezvous from MASTER_ADDR, MASTER_PORT";
    if (launch.agent_store) launch.origin += " (torchrun's agent store)";
  }
  return launch;
}

/// MASTER_ADDR/MASTER_PORT when set, else the config's values.
void rendezvous_from_env_or_config(const Reader& r, const LaunchDefaults& defaults, LaunchEnvironment& launch) {
  if (const auto port = r.integer("MASTER_PORT")) {
    check_port(r, launch, *port, "MASTER_PORT");
    launch.origin += ", port from MASTER_PORT";
  } else {
    check_port(r, launch, defaults.master_port, "distributed.master_port");
    launch.origin += ", port from distributed.master_port";
  }
}

LaunchEnvironment from_openmpi(const EnvironmentLookup& env, const LaunchDefaults& defaults) {
  Reader r(env, "mpirun");
  LaunchEnvironment launch;
  launch.launcher = r.launcher();
  launch.world_size = static_cast<int>(r.required_integer("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE is missing"));
  launch.rank = static_cast<int>(r.required_integer(
      "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE is set but OMPI_COMM_WORLD_RANK is not"));
  launch.local_rank = static_cast<int>(r.required_integer(
      "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_SIZE is set but OMPI_COMM_WORLD_LOCAL_RANK is not"));
  launch.local_world_size = static_cast<int>(r.required_integer(
      "OMPI_COMM_WORLD_LOCAL_SIZE", "OMPI_COMM_WORLD_SIZE is set but OMPI_COMM_WORLD_LOCAL_SIZE is not"));
  check_ranks(r, launch, {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                          "OMPI_COMM_WORLD_LOCAL_SIZE"});
  launch.origin = "ranks from OMPI_COMM_WORLD_*";
  if (!launch.distributed()) return launch;
  if (const auto addr = r.get("MASTER_ADDR")) {
    launch.master_addr = *addr;
    launch.origin += "; rendezvous host from MASTER_ADDR";
  } else if (!defaults.master_addr.empty()) {
    launch.master_addr = defaults.master_addr;
    launch.origin += "; rendezvous host from distributed.master_addr";
  } else if (launch.local_world_size == launch.world_size) {
    launch.master_addr = "127.0.0.1";
    launch.origin += "; rendezvous host 127.0.0.1 (every rank on this node)";
  } else {
    r.fail("mpirun started " + std::to_string(launch.world_size) + " ranks over several nodes (" +
           std::to_string(launch.local_world_size) +
           " on this one) but sets no rendezvous host; pass rank 0's host as MASTER_ADDR "
           "(mpirun -x MASTER_ADDR=<host>) or set distributed.master_addr");
  }
  rendezvous_from_env_or_config(r, defaults, launch);
  return launch;
}

LaunchEnvironment from_slurm(const EnvironmentLookup& env, const LaunchDefaults& defaults) {
  Reader r(env, "slurm");
  LaunchEnvironment launch;
  launch.launcher = r.launcher();
  launch.rank = static_cast<int>(*r.integer("SLURM_PROCID"));
  std::string world_source = "SLURM_STEP_NUM_TASKS";
  auto world = r.integer(world_source);
  if (!world) {
    world_source = "SLURM_NTASKS";
    world = r.integer(world_source);
  }
  if (!world) r.fail("SLURM_PROCID is set but neither SLURM_STEP_NUM_TASKS nor SLURM_NTASKS is");
  launch.world_size = static_cast<int>(*world);
  launch.local_rank = static_cast<int>(
      r.required_integer("SLURM_LOCALID", "SLURM_PROCID is set but SLURM_LOCALID is not"));

  // Tasks on this node: the step's own layout first, then the job's.
  std::string local_source;
  const int node = static_cast<int>(r.integer("SLURM_NODEID").value_or(0));
  const auto per_node_entry = [&](const std::string& name) -> std::optional<int> {
    const auto value = r.get(name);
    if (!value) return std::nullopt;
    std::vector<int> counts;
    try {
      counts = slurm::expand_tasks_per_node(*value);
    } catch (const UsageError& e) {
      r.fail(name + ": " + e.what());
    }
    if (node < 0 || node >= static_cast<int>(counts.size())) {
      r.fail("SLURM_NODEID=" + std::to_string(node) + " has no entry in " + name + "='" + *value + "'");
    }
    local_source = name;
    return counts[static_cast<size_t>(node)];
  };
  std::optional<int> local_world = per_node_entry("SLURM_STEP_TASKS_PER_NODE");
  if (!local_world) {
    if (const auto n = r.integer("SLURM_NTASKS_PER_NODE")) {
      local_world = static_cast<int>(*n);
      local_source = "SLURM_NTASKS_PER_NODE";
    }
  }
  if (!local_world) local_world = per_node_entry("SLURM_TASKS_PER_NODE");
  if (!local_world) {
    r.fail("SLURM_PROCID is set but none of SLURM_STEP_TASKS_PER_NODE, SLURM_NTASKS_PER_NODE, "
           "SLURM_TASKS_PER_NODE is");
  }
  launch.local_world_size = *local_world;
  check_ranks(r, launch, {"SLURM_PROCID", world_source, "SLURM_LOCALID", local_source});
  launch.origin = "ranks from SLURM_PROCID, " + world_source + ", SLURM_LOCALID, " + local_source;
  launch.restart_count = static_cast<int>(r.integer("SLURM_RESTART_COUNT").value_or(0));
  if (!launch.distributed()) return launch;

  if (const auto addr = r.get("MASTER_ADDR")) {
    launch.master_addr = *addr;
    launch.origin += "; rendezvous host from MASTER_ADDR";
  } else {
    for (const char* name : {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"}) {
      const auto list = r.get(name);
      if (!list) continue;
      try {
        launch.master_addr = slurm::expand_hostlist(*list).front();
      } catch (const UsageError& e) {
        r.fail(std::string(name) + ": " + e.what());
      }
      launch.origin += std::string("; rendezvous host: first node of ") + name;
      break;
    }
    if (launch.master_addr.empty()) {
      r.fail("none of MASTER_ADDR, SLURM_STEP_NODELIST, SLURM_JOB_NODELIST, SLURM_NODELIST is set; "
             "the rendezvous host is unknown");
    }
  }
  rendezvous_from_env_or_config(r, defaults, launch);
  return launch;
}

}  // namespace

EnvironmentLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

EnvironmentLookup fixed_environment(std::map<std::string, std::string> variables) {
  return [variables = std::move(variables)](const std::string& name) -> std::optional<std::string> {
    const auto it = variables.find(name);
    if (it == variables.end()) return std::nullopt;
    return it->second;
  };
}

LaunchEnvironment detect_launch_environment(const EnvironmentLookup& env, const LaunchDefaults& defaults) {
  const auto set = [&](const char* name) {
    const auto value = env(name);
    return value && !value->empty();
  };
  if (set("RANK") || set("WORLD_SIZE")) return from_torchrun(env);
  if (set("OMPI_COMM_WORLD_SIZE") || set("OMPI_COMM_WORLD_RANK")) return from_openmpi(env, defaults);
  // A batch script or an salloc shell has SLURM_PROCID too, but is one process
  // that has not been launched by srun: only a job step counts.
  if (set("SLURM_PROCID") && (set("SLURM_STEP_ID") || set("SLURM_STEPID"))) return from_slurm(env, defaults);
  LaunchEnvironment single;
  single.origin = "no launcher variables";
  return single;
}

void check_world_size(const LaunchEnvironment& launch, int64_t configured_world_size) {
  if (configured_world_size == 0 || configured_world_size == launch.world_size) return;
  throw UsageError("distributed.world_size is " + std::to_string(configured_world_size) + " but " +
                   launch.launcher + " started " + std::to_string(launch.world_size) +
                   (launch.world_size == 1 ? " process" : " processes") +
                   "; set distributed.world_size to 0 to accept the launcher's, or launch " +
                   std::to_string(configured_world_size) + " processes");
}

int cuda_device_index(const LaunchEnvironment& launch, int visible_gpus) {
  if (launch.local_rank < visible_gpus) return launch.local_rank;
  throw UsageError("local rank " + std::to_string(launch.local_rank) + " (" + launch.launcher + ", " +
                   std::to_string(launch.local_world_size) + " processes on this node) has no GPU of its own: " +
                   std::to_string(visible_gpus) +
                   " visible; start at most one process per GPU and keep every GPU visible to every "
                   "process of the node (CUDA_VISIBLE_DEVICES)");
}

}  // namespace kmidi::train
