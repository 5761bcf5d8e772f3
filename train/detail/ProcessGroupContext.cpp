#include "train/detail/ProcessGroupContext.h"

#include <torch/torch.h>

#include <cstring>
#include <map>

#include "core/Errors.h"
#include "train/detail/Collectives.h"
#include "train/detail/GradientBuckets.h"

namespace kmidi::train::detail {
namespace {

/// FNV-1a: a stable 64-bit hash of a module's structure, equal across processes.
class StructureHash {
 public:
  void add(const void* data, size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) {
      hash_ ^= bytes[i];
      hash_ *= 1099511628211ULL;
    }
  }
  void add(const std::string& text) { add(text.data(), text.size() + 1); }
  void add(int64_t value) { add(&value, sizeof value); }
  int64_t value() const {
    int64_t v;
    std::memcpy(&v, &hash_, sizeof v);
    return v;
  }

 private:
  uint64_t hash_ = 14695981039346656037ULL;
};

/// Parameters (all, frozen ones too) then buffers, in registration order.
std::vector<std::pair<std::string, at::Tensor>> module_state(torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> state;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) state.emplace_back("parameter " + p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) state.emplace_back("buffer " + b.key(), b.value());
  return state;
}

}  // namespace

ProcessGroupContext::ProcessGroupContext(const LaunchEnvironment& launch, const DistributedConfig& config,
                                         c10::Device device, const std::string& backend)
    : collectives_(std::make_shared<Collectives>(launch, backend, device, config.timeout_s)),
      bucket_mb_(config.bucket_mb),
      find_unused_parameters_(config.find_unused_parameters) {
  rank_ = launch.rank;
  world_size_ = launch.world_size;
  local_rank_ = launch.local_rank;
  local_world_size_ = launch.local_world_size;
  restart_count_ = launch.restart_count;
  launcher_ = launch.launcher;
  device_ = device;
  backend_ = backend;
}

ProcessGroupContext::~ProcessGroupContext() = default;

void ProcessGroupContext::all_reduce_sum(std::vector<double>& values) {
  if (values.empty()) return;
  at::Tensor sums = torch::tensor(values, torch::kFloat64).to(collectives_->comm_device());
  collectives_->wait(collectives_->all_reduce(sums), "the sum of " + std::to_string(values.size()) + " value(s)");
  sums = sums.cpu();
  std::memcpy(values.data(), sums.data_ptr<double>(), values.size() * sizeof(double));
}

void ProcessGroupContext::barrier() {
  at::Tensor token = torch::zeros({1}, torch::TensorOptions().device(collectives_->comm_device()));
  collectives_->wait(collectives_->all_reduce(token), "a barrier");
}

std::string ProcessGroupContext::broadcast_string(const std::string& value) {
  const auto device = collectives_->comm_device();
  at::Tensor size = torch::tensor({static_cast<int64_t>(value.size())}, torch::kInt64).to(device);
  collectives_->wait(collectives_->broadcast(size, 0), "the size of a string from rank 0");
  const int64_t n = size.cpu().item<int64_t>();
  at::Tensor text = torch::zeros({n}, torch::kUInt8);
  if (rank_ == 0) std::memcpy(text.data_ptr<uint8_t>(), value.data(), value.size());
  text = text.to(device);
  if (n > 0) collectives_->wait(collectives_->broadcast(text, 0), "a string from rank 0");
  text = text.cpu();
  return std::string(reinterpret_cast<const char*>(text.data_ptr<uint8_t>()), static_cast<size_t>(n));
}

void ProcessGroupContext::broadcast_module(torch::nn::Module& module) {
  auto state = module_state(module);
  const auto device = collectives_->comm_device();

  // Same structure everywhere? Every rank learns the answer, so all fail together.
  StructureHash hash;
  for (const auto& [name, tensor] : state) {
    hash.add(name);
    hash.add(static_cast<int64_t>(tensor.scalar_type()));
    for (const auto size : tensor.sizes()) hash.add(size);
  }
  at::Tensor theirs = torch::tensor({hash.value(), static_cast<int64_t>(state.size())}, torch::kInt64).to(device);
  collectives_->wait(collectives_->broadcast(theirs, 0), "the model structure of rank 0");
  theirs = theirs.cpu();
  const bool differs = theirs[0].item<int64_t>() != hash.value() || theirs[1].item<int64_t>() != static_cast<int64_t>(state.size());
  at::Tensor differing = torch::tensor({differs ? 1.0 : 0.0}, torch::kFloat64).to(device);
  collectives_->wait(collectives_->all_reduce(differing), "the model structure check");
  const auto ranks_differing = static_cast<int64_t>(differing.cpu().item<double>());
  if (ranks_differing > 0) {
    throw UsageError(std::to_string(ranks_differing) + " rank(s) built a model whose parameters or buffers " +
                     "(names, shapes, dtypes) differ from rank 0's" + (differs ? ", this rank among them" : "") +
                     "; every rank must build the same model from the same config");
  }

  // One flat broadcast per dtype. Gloo has no bool: send those as bytes.
  std::map<int, std::vector<size_t>> by_dtype;
  for (size_t i = 0; i < state.size(); ++i) by_dtype[static_cast<int>(state[i].second.scalar_type())].push_back(i);
  torch::NoGradGuard no_grad;
  for (const auto& [dtype, members] : by_dtype) {
    const bool as_bytes = static_cast<at::ScalarType>(dtype) == at::kBool;
    std::vector<at::Tensor> pieces;
    for (const size_t i : members) {
      at::Tensor flat = state[i].second.detach().reshape({-1});
      pieces.push_back(as_bytes ? flat.to(at::kByte) : flat);
    }
    at::Tensor flat = torch::cat(pieces).to(device);
    collectives_->wait(collectives_->broadcast(flat, 0), "the parameters and buffers of rank 0");
    int64_t offset = 0;
    for (const size_t i : members) {
      at::Tensor& target = state[i].second;
      const int64_t n = target.numel();
      target.copy_(flat.narrow(0, offset, n).view(target.sizes()).to(target.scalar_type()));
      offset += n;
    }
  }
}

std::unique_ptr<GradientSynchronizer> ProcessGroupContext::synchronize_gradients(torch::nn::Module& module) {
  return std::make_unique<BucketedSynchronizer>(collectives_, module, bucket_mb_, find_unused_parameters_);
}

void ProcessGroupContext::abort(const std::string& reason) { collectives_->abort(reason); }

void ProcessGroupContext::stop_on_request(const std::string& reason) { collectives_->stop_on_request(reason); }

std::shared_ptr<DistributedContext> make_process_group_context(const LaunchEnvironment& launch,
                                                               const DistributedConfig& config, c10::Device device,
                                                               const std::string& backend) {
  return std::make_shared<ProcessGroupContext>(launch, config, device, backend);
}

}  // namespace kmidi::train::detail
