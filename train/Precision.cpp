#include "train/Precision.h"

#include "core/Errors.h"
#include "core/TorchCompat.h"

namespace kmidi::train {

Precision resolve_precision(const std::string& setting, c10::Device device) {
  if (setting == "fp32") return Precision::kFp32;
  if (setting == "bf16") return Precision::kBf16;
  if (setting == "auto") return device.is_cuda() ? Precision::kBf16 : Precision::kFp32;
  throw UsageError("train.precision: expected auto, fp32 or bf16, got '" + setting + "'");
}

const char* precision_name(Precision precision) { return precision == Precision::kBf16 ? "bf16" : "fp32"; }

void throw_cpu_autocast_failure(const std::exception& error) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
  std::string what = c10_error ? c10_error->what_without_backtrace() : error.what();
  what = what.substr(0, what.find('\n'));
  throw UsageError("bf16 autocast on CPU failed in the task's forward (this LibTorch's CPU autocast does not cover "
                   "every operation, e.g. layer_norm with fp32 weights): " + what +
                   "; use train.precision: fp32 on CPU, or cast inputs of such operations to fp32 in the model");
}

AutocastGuard::AutocastGuard(Precision precision, c10::Device device) : device_type_(device.type()) {
  if (precision != Precision::kBf16) return;
  if (device_type_ != c10::DeviceType::CPU && device_type_ != c10::DeviceType::CUDA) {
    throw UsageError(std::string("bf16 autocast is not available on device ") + c10::DeviceTypeName(device_type_));
  }
  active_ = true;
  previous_enabled_ = compat::is_autocast_enabled(device_type_);
  previous_dtype_ = compat::autocast_dtype(device_type_);
  compat::set_autocast_dtype(device_type_, c10::ScalarType::BFloat16);
  compat::set_autocast_enabled(device_type_, true);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // Leaving the outermost region drops the cached bf16 copies of the weights.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  compat::set_autocast_enabled(device_type_, previous_enabled_);
  compat::set_autocast_dtype(device_type_, previous_dtype_);
}

}  // namespace kmidi::train
