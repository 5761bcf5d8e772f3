#pragma once
// DistributedContext for a job of several processes. Private to train/.

#include <memory>
#include <string>

#include "train/Distributed.h"

namespace kmidi::train::detail {

class Collectives;

class ProcessGroupContext final : public DistributedContext {
 public:
  ProcessGroupContext(const LaunchEnvironment& launch, const DistributedConfig& config, c10::Device device,
                      const std::string& backend);
  ~ProcessGroupContext() override;

  void all_reduce_sum(std::vector<double>& values) override;
  void broadcast_module(torch::nn::Module& module) override;
  void barrier() override;
  std::unique_ptr<GradientSynchronizer> synchronize_gradients(torch::nn::Module& module) override;
  std::string broadcast_string(const std::string& value) override;
  void abort(const std::string& reason) override;
  void stop_on_request(const std::string& reason) override;

 private:
  std::shared_ptr<Collectives> collectives_;
  double bucket_mb_;
  bool find_unused_parameters_;
};

}  // namespace kmidi::train::detail
