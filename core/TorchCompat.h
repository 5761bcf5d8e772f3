#pragma once
// The one place where LibTorch version differences live. kmidi builds against
// Debian's LibTorch 1.13 (CPU) and against LibTorch 2.x with CUDA (the one in a
// pip torch wheel). Code elsewhere calls these helpers, never #if on versions.

#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>

#include <string>

#define KMIDI_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace c10d {
class ProcessGroup;
class Backend;
}  // namespace c10d

namespace kmidi::compat {

/// The c10d class that ProcessGroupGloo and ProcessGroupNCCL derive from and
/// whose allreduce/broadcast kmidi calls directly: ProcessGroup in 1.x,
/// Backend from 2.0 on (ProcessGroup became a dispatcher over backends).
#if KMIDI_TORCH_AT_LEAST(2, 0)
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

/// Turns autocast on or off for one device type (CPU or CUDA) in this thread.
inline void set_autocast_enabled(c10::DeviceType device, bool enabled) {
#if KMIDI_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device, enabled);
#else
  if (device == c10::DeviceType::CUDA) at::autocast::set_enabled(enabled);
  else at::autocast::set_cpu_enabled(enabled);
#endif
}

inline bool is_autocast_enabled(c10::DeviceType device) {
#if KMIDI_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

/// The lower-precision type autocast casts to on `device`.
inline void set_autocast_dtype(c10::DeviceType device, c10::ScalarType dtype) {
#if KMIDI_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::DeviceType::CUDA) at::autocast::set_autocast_gpu_dtype(dtype);
  else at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

inline c10::ScalarType autocast_dtype(c10::DeviceType device) {
#if KMIDI_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                         : at::autocast::get_autocast_cpu_dtype();
#endif
}

/// Opens a TCPStore (server or client, as `options` says). From 2.4 the store
/// defaults to its libuv backend, which a LibTorch built without libuv (e.g.
/// Debian's 2.6) refuses in the constructor before opening any socket; the
/// classic backend speaks the same protocol, so it is used instead, and
/// `options` keeps useLibUV false so that further connections made from it
/// skip the refused attempt. Other errors are not retried: a second attempt
/// would double a client's wait.
inline c10::intrusive_ptr<c10d::TCPStore> make_tcp_store(const std::string& host, c10d::TCPStoreOptions& options) {
#if KMIDI_TORCH_AT_LEAST(2, 2)
  if (options.useLibUV) {
    try {
      return c10::make_intrusive<c10d::TCPStore>(host, options);
    } catch (const c10::Error& e) {
      if (std::string(e.what_without_backtrace()).find("libuv") == std::string::npos) throw;
      options.useLibUV = false;
    }
  }
#endif
  return c10::make_intrusive<c10d::TCPStore>(host, options);
}

}  // namespace kmidi::compat
