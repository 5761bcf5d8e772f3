// The shared precompiled header: only what almost every torch translation unit
// includes anyway. Code must still include what it uses; this is an accelerator.
#pragma once
#include <torch/torch.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>
