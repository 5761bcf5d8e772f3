#pragma once
// Mixed precision: bf16 autocast around forward passes. Parameters, gradients
// and optimizer state stay fp32; backward runs outside autocast.

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <string>

namespace kmidi::train {

enum class Precision { kFp32, kBf16 };

/// The CPU's native bf16 instructions as cpuid reports them (and the OS
/// enables their registers): "amx_bf16", "avx512_bf16", or "" for none.
std::string cpu_native_bf16();

/// A resolved train.precision and why it was chosen.
struct PrecisionChoice {
  Precision precision = Precision::kFp32;
  std::string reason;  ///< e.g. "auto: CPU has avx512_bf16", "set in train.precision"
  /// "bf16 (auto: CPU has avx512_bf16)".
  std::string describe() const;
};

/// train.precision for a device. "auto" is bf16 autocast on CUDA and on CPUs
/// with native bf16 (`cpu_bf16`, as cpu_native_bf16() returns), fp32
/// elsewhere; "fp32" and "bf16" force it. Throws UsageError for an unknown setting.
PrecisionChoice choose_precision(const std::string& setting, c10::Device device, const std::string& cpu_bf16);
/// The same on this machine's CPU.
PrecisionChoice choose_precision(const std::string& setting, c10::Device device);
Precision resolve_precision(const std::string& setting, c10::Device device);
const char* precision_name(Precision precision);

/// Throws std::logic_error naming `what` when a task's loss or metric sum is
/// bf16 or fp16: sums must be reduced in fp32 or wider whatever autocast did.
void require_full_precision_sum(const std::string& what, c10::ScalarType dtype);

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
