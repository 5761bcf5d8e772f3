#pragma once
// Mixed precision: bf16 autocast around forward passes. Parameters, gradients
// and optimizer state stay fp32; backward runs outside autocast.

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <string>

namespace kmidi::train {

enum class Precision { kFp32, kBf16 };

/// train.precision for a device: "auto" is bf16 on CUDA and fp32 on CPU;
/// "bf16" on CPU uses CPU autocast. Throws UsageError for an unknown setting.
Precision resolve_precision(const std::string& setting, c10::Device device);
const char* precision_name(Precision precision);

/// Runs `forward` under autocast. On CPU with bf16, a LibTorch error (1.13's
/// CPU autocast does not cover every operation) becomes a UsageError that
/// says so and names train.precision.
template <class F>
auto with_autocast(Precision precision, c10::Device device, F&& forward) -> decltype(forward());

[[noreturn]] void throw_cpu_autocast_failure(const std::exception& error);

/// Autocast on `device` for the guard's lifetime (a no-op for fp32). Clears
/// the cast-weight cache on exit: weights change every step.
class AutocastGuard {
 public:
  AutocastGuard(Precision precision, c10::Device device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType device_type_;
  bool previous_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::Undefined;
};

template <class F>
auto with_autocast(Precision precision, c10::Device device, F&& forward) -> decltype(forward()) {
  AutocastGuard guard(precision, device);
  if (precision != Precision::kBf16 || !device.is_cpu()) return forward();
  try {
    return forward();
  } catch (const c10::Error& e) {
    throw_cpu_autocast_failure(e);
  }
}

}  // namespace kmidi::train
