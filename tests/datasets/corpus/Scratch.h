#pragma once
// A per-process scratch folder for corpus tests, removed when the test binary exits.

#include <unistd.h>

#include <filesystem>
#include <string>

namespace kmidi::corpus::testing {

inline std::filesystem::path scratch_root() {
  return std::filesystem::temp_directory_path() / ("kmidi_corpus_" + std::to_string(::getpid()));
}

/// An empty folder `name` under this process's scratch root.
inline std::filesystem::path scratch(const std::string& name) {
  const std::filesystem::path p = scratch_root() / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

struct ScratchCleanup {
  ~ScratchCleanup() {
    std::error_code ec;
    std::filesystem::remove_all(scratch_root(), ec);
  }
};

inline std::string shared(const std::string& relative) { return std::string(KMIDI_SHARED_DATA) + "/" + relative; }

}  // namespace kmidi::corpus::testing
