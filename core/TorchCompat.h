#pragma once
// The one place where LibTorch version differences live. kmidi builds against
// Debian's LibTorch 1.13 (CPU) and against LibTorch 2.x with CUDA (the one in a
// pip torch wheel). Code elsewhere calls these helpers, never #if on versions.

#include <torch/version.h>

#define KMIDI_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))
