#include "cli/HandOver.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace kmidi::cli {

bool runs_models(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    for (const char* command : {"train", "evaluate", "generate", "export", "humanize", "predict"}) {
      if (std::strcmp(argv[i], command) == 0) return true;
    }
  }
  return false;
}

bool choose_passive_openmp(int argc, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || !runs_models(argc, argv)) return false;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  return true;
}

std::string beside_this_binary(const std::string& relative) {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) throw std::runtime_error("cannot find the kmidi executable: /proc/self/exe: " + error.message());
  return (self.parent_path() / relative).lexically_normal().string();
}

void exec_binary(const std::string& binary, const std::string& command, char** argv) {
  ::execv(binary.c_str(), argv);
  const int exec_errno = errno;
  throw std::runtime_error("cannot run `kmidi " + command + "`: " + binary + ": " + std::strerror(exec_errno) +
                           " (a part of kmidi that the default build target makes)");
}

void exec_torch_binary(const std::string& binary, const std::string& command, int argc, char** argv) {
  choose_passive_openmp(argc, argv);
  exec_binary(binary, command, argv);
}

}  // namespace kmidi::cli
