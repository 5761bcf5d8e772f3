#pragma once
// The one place where LibTorch version differences live. kmidi builds against
// Debian's LibTorch 1.13 (CPU) and against LibTorch 2.x with CUDA (the one in a
// pip torch wheel). Code elsewhere calls these helpers, never #if on versions.

#include <torch/version.h>

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

}  // namespace kmidi::compat
