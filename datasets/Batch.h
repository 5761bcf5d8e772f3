#pragma once
// What a dataset hands to a model: named input tensors, named target tensors
// (absent for unlabelled data) and the item indices they came from.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kmidi::data {

/// An ordered list of named tensors. Order is part of a model's contract
/// (ONNX inputs and outputs are ordered), so this is a vector, not a map.
class NamedTensors {
 public:
  void set(const std::string& name, at::Tensor tensor);
  /// The tensor called `name`; throws std::out_of_range listing the names present.
  const at::Tensor& at(const std::string& name) const;
  bool contains(const std::string& name) const;
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  std::vector<std::string> names() const;
  const std::vector<std::pair<std::string, at::Tensor>>& items() const { return items_; }
  NamedTensors to(c10::Device device, bool non_blocking = false) const;

 private:
  std::vector<std::pair<std::string, at::Tensor>> items_;
};

struct Batch {
  std::vector<int64_t> indices;  ///< dataset item index of each row
  NamedTensors inputs;
  NamedTensors targets;  ///< empty when the data has no labels
  /// How many units the loss averages over (non-pad target tokens, samples,
  /// points): known before the forward pass so that ranks and accumulation
  /// micro-steps can agree on one global normaliser.
  int64_t units = 0;
  /// Units of input processed, for throughput (e.g. tokens including prompts).
  int64_t throughput_units = 0;
  bool has_targets() const { return !targets.empty(); }
  Batch to(c10::Device device) const;
};

}  // namespace kmidi::data
