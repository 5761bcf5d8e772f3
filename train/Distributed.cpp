#include "train/Distributed.h"

#include <torch/torch.h>

#include "core/Errors.h"

namespace kmidi::train {

GradientSynchronizer::~GradientSynchronizer() = default;
DistributedContext::~DistributedContext() = default;

void DistributedConfig::visit(config::Visitor& v) {
  v.field("backend", backend, config::Spec("collective backend").one_of({"auto", "gloo", "nccl"}));
  v.field("world_size", world_size,
          config::Spec("expected number of processes; 0 accepts the launcher's").non_negative());
  v.field("timeout_s", timeout_s, config::Spec("collective/rendezvous timeout in seconds").positive());
  v.field("bucket_mb", bucket_mb, config::Spec("gradient bucket size in MiB").positive());
  v.field("find_unused_parameters", find_unused_parameters,
          config::Spec("tolerate parameters that get no gradient in a step"));
  v.field("master_addr", master_addr, config::Spec("rendezvous host when the launcher sets none"));
  v.field("master_port", master_port, config::Spec("rendezvous port when the launcher sets none").min(1).max(65535));
}

namespace {

c10::Device resolve_device(const std::string& device) {
  if (device == "cpu") return c10::Device(c10::kCPU);
  if (device == "cuda") {
    if (!torch::cuda::is_available()) throw UsageError("run.device is 'cuda' but no CUDA device is available");
    return c10::Device(c10::kCUDA, 0);
  }
  if (device == "auto") {
    return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  }
  throw UsageError("unknown device '" + device + "'; expected auto, cpu or cuda");
}

/// One process, no collectives: every operation is the identity.
class SingleProcessContext final : public DistributedContext {
 public:
  explicit SingleProcessContext(c10::Device device) { device_ = device; }
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
  if (config.world_size > 1) {
    throw UsageError("distributed.world_size is " + std::to_string(config.world_size) +
                     " but this process was started without a launcher (world size 1)");
  }
  return std::make_shared<SingleProcessContext>(resolve_device(device));
}

}  // namespace kmidi::train
