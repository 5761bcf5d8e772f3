#include "train/Distributed.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "core/Errors.h"
#include "core/Logging.h"

namespace kmidi::train {

GradientSynchronizer::~GradientSynchronizer() = default;
DistributedContext::~DistributedContext() = default;

void DistributedConfig::visit(config::Visitor& v) {
  v.field("backend", backend, config::Spec("collective backend").one_of({"auto", "gloo", "nccl"}));
  v.field("world_size", world_size,
          config::Spec("expected number of processes; 0 accepts the launcher's").non_negative());
  v.field("timeout_s", timeout_s,
          config::Spec("rendezvous/collective timeout in seconds; a dead or hung rank ends the job within it")
              .min(1.0));
  v.field("bucket_mb", bucket_mb,
          config::Spec("gradient bucket size in MiB (all-reduced as backward fills it)").positive());
  v.field("find_unused_parameters", find_unused_parameters,
          config::Spec("tolerate parameters that get no gradient in a step"));
  v.field("master_addr", master_addr,
          config::Spec("rendezvous host when the launcher sets none (mpirun); empty: 127.0.0.1 on one node"));
  v.field("master_port", master_port,
          config::Spec("rendezvous port when the launcher sets none (mpirun, srun)").min(1).max(65535));
}

c10::Device select_device(const std::string& device, const LaunchEnvironment& launch) {
  if (device == "cpu") return c10::Device(c10::kCPU);
  if (device == "cuda") {
    if (!torch::cuda::is_available()) throw UsageError("run.device is 'cuda' but no CUDA device is available");
    return c10::Device(c10::kCUDA,
                       static_cast<c10::DeviceIndex>(cuda_device_index(launch, static_cast<int>(torch::cuda::device_count()))));
  }
  if (device == "auto") return select_device(torch::cuda::is_available() ? "cuda" : "cpu", launch);
  throw UsageError("unknown device '" + device + "'; expected auto, cpu or cuda");
}

namespace {

/// One process, no collectives: every operation is the identity.
class SingleProcessContext final : public DistributedContext {
 public:
  SingleProcessContext(c10::Device device, const LaunchEnvironment& launch) {
    device_ = device;
    launcher_ = launch.launcher;
    restart_count_ = launch.restart_count;
  }
  void all_reduce_sum(std::vector<double>&) override {}
  void broadcast_module(torch::nn::Module&) override {}
  void barrier() override {}
  std::unique_ptr<GradientSynchronizer> synchronize_gradients(torch::nn::Module&) override {
    struct Local final : GradientSynchronizer {
      void set_enabled(bool) override {}
      void finish() override {}
    };
    return std::make_unique<Local>();
  }
};

}  // namespace

std::shared_ptr<DistributedContext> DistributedContext::create(const DistributedConfig& config,
                                                               const std::string& device) {
  const LaunchDefaults defaults{config.master_addr, config.master_port};
  return create(config, device, detect_launch_environment(process_environment(), defaults));
}

std::shared_ptr<DistributedContext> DistributedContext::create(const DistributedConfig& config,
                                                               const std::string& device,
                                                               const LaunchEnvironment& launch) {
  check_world_size(launch, config.world_size);
  const c10::Device chosen = select_device(device, launch);
  std::string backend = config.backend;
  if (backend == "auto") backend = chosen.is_cuda() ? "nccl" : "gloo";
  if (backend == "nccl" && !chosen.is_cuda()) {
    throw UsageError("distributed.backend is 'nccl' but this process runs on " + chosen.str() +
                     "; NCCL needs CUDA devices: use backend gloo (or auto) on the CPU");
  }
  if (backend != "gloo" && backend != "nccl") {
    throw UsageError("distributed.backend '" + backend + "' is unknown; expected auto, gloo or nccl");
  }

  logging::Options log = logging::options();
  log.rank = launch.rank;
  log.world_size = launch.world_size;
  logging::init(log);

  if (!launch.distributed()) {
    spdlog::debug("single process ({}) on {}", launch.origin, chosen.str());
    return std::make_shared<SingleProcessContext>(chosen, launch);
  }
  auto context = detail::make_process_group_context(launch, config, chosen, backend);
  spdlog::info("distributed: {} processes started by {} ({}), backend {}, this is rank {} on {}",
               launch.world_size, launch.launcher, launch.origin, backend, launch.rank, chosen.str());
  return context;
}

}  // namespace kmidi::train
