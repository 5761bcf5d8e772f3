#include "train/Precision.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cstdint>
#include <stdexcept>

#include "core/Errors.h"
#include "core/TorchCompat.h"

namespace kmidi::train {

namespace {

std::string detect_native_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7 || !__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_OSXSAVE)) return "";
  // XCR0 says which register states the OS saves: an instruction set whose
  // registers it does not save cannot be used.
  uint32_t xcr0_low = 0, xcr0_high = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  const uint64_t xcr0 = (static_cast<uint64_t>(xcr0_high) << 32) | xcr0_low;
  constexpr uint64_t kAvx512State = 0xE6;     // SSE, AVX, opmask, ZMM0-15 upper halves, ZMM16-31
  constexpr uint64_t kAmxState = 0x60000;     // tile configuration and tile data
  const bool avx512_enabled = (xcr0 & kAvx512State) == kAvx512State;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const unsigned max_subleaf = eax;
  const bool amx_bf16 = (edx >> 22) & 1u;     // CPUID.(EAX=7,ECX=0):EDX[22]
  if (amx_bf16 && avx512_enabled && (xcr0 & kAmxState) == kAmxState) return "amx_bf16";
  if (max_subleaf >= 1) {
    __cpuid_count(7, 1, eax, ebx, ecx, edx);
    const bool avx512_bf16 = (eax >> 5) & 1u;  // CPUID.(EAX=7,ECX=1):EAX[5]
    if (avx512_bf16 && avx512_enabled) return "avx512_bf16";
  }
#endif
  return "";
}

}  // namespace

std::string cpu_native_bf16() {
  static const std::string feature = detect_native_bf16();
  return feature;
}

std::string PrecisionChoice::describe() const { return std::string(precision_name(precision)) + " (" + reason + ")"; }

PrecisionChoice choose_precision(const std::string& setting, c10::Device device, const std::string& cpu_bf16) {
  const bool cpu = device.is_cpu();
  if (setting == "fp32") return {Precision::kFp32, "set by train.precision"};
  if (setting == "bf16") {
    if (cpu && cpu_bf16.empty()) {
      return {Precision::kBf16, "set by train.precision; this CPU has no native bf16, so bf16 math is emulated and slow"};
    }
    return {Precision::kBf16, "set by train.precision"};
  }
  if (setting == "auto") {
    if (device.is_cuda()) return {Precision::kBf16, "auto: CUDA device"};
    if (cpu && !cpu_bf16.empty()) return {Precision::kBf16, "auto: CPU has " + cpu_bf16};
    if (cpu) return {Precision::kFp32, "auto: CPU has neither avx512_bf16 nor amx_bf16"};
    return {Precision::kFp32, "auto: device " + device.str()};
  }
  throw UsageError("train.precision: expected auto, fp32 or bf16, got '" + setting + "'");
}

PrecisionChoice choose_precision(const std::string& setting, c10::Device device) {
  return choose_precision(setting, device, cpu_native_bf16());
}

Precision resolve_precision(const std::string& setting, c10::Device device) {
  return choose_precision(setting, device).precision;
}

const char* precision_name(Precision precision) { return precision == Precision::kBf16 ? "bf16" : "fp32"; }

void require_full_precision_sum(const std::string& what, c10::ScalarType dtype) {
  if (dtype == c10::ScalarType::BFloat16 || dtype == c10::ScalarType::Half) {
    throw std::logic_error("the task's forward() returned " + what + " as " + c10::toString(dtype) +
                           "; reduce losses and metric sums in fp32 (cast the model's output with .to(kFloat) "
                           "before summing), or the sums lose their low digits under autocast");
  }
}

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
