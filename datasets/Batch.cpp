#include "datasets/Batch.h"

#include <ATen/ATen.h>

#include <stdexcept>

#include "core/Strings.h"
#include "datasets/Dataset.h"

namespace kmidi::data {

Dataset::~Dataset() = default;

void NamedTensors::set(const std::string& name, at::Tensor tensor) {
  for (auto& item : items_) {
    if (item.first == name) {
      item.second = std::move(tensor);
      return;
    }
  }
  items_.emplace_back(name, std::move(tensor));
}

const at::Tensor& NamedTensors::at(const std::string& name) const {
  for (const auto& item : items_) {
    if (item.first == name) return item.second;
  }
  throw std::out_of_range("no tensor named '" + name + "'; present: " + strings::join(names(), ", "));
}

bool NamedTensors::contains(const std::string& name) const {
  for (const auto& item : items_) {
    if (item.first == name) return true;
  }
  return false;
}

std::vector<std::string> NamedTensors::names() const {
  std::vector<std::string> out;
  for (const auto& item : items_) out.push_back(item.first);
  return out;
}

NamedTensors NamedTensors::to(c10::Device device, bool non_blocking) const {
  NamedTensors out;
  for (const auto& [name, t] : items_) out.set(name, t.to(device, non_blocking));
  return out;
}

Batch Batch::to(c10::Device device) const {
  Batch out = *this;
  out.inputs = inputs.to(device, /*non_blocking=*/true);
  out.targets = targets.to(device, /*non_blocking=*/true);
  return out;
}

}  // namespace kmidi::data
