// build/libexec/kmidi: every kmidi subcommand, with LibTorch. build/kmidi
// (cli/Main.cpp) hands it the commands that need tensors; run directly, it
// behaves as build/kmidi does.

#include <c10/util/Exception.h>
#include <unistd.h>

#include "cli/Commands.h"
#include "cli/Run.h"
#include "cli/HandOver.h"
#include "core/Errors.h"

namespace {

int report_libtorch_error(const std::exception& e) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
  if (torch_error == nullptr) return -1;
  return kmidi::cli::report_error("internal error (LibTorch): ", torch_error->what_without_backtrace(),
                                  kmidi::kExitInternal);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kmidi::cli;
  // Run directly (not through build/kmidi, which chose the policy before
  // LibTorch loaded): re-execute once with OMP_WAIT_POLICY chosen.
  if (choose_passive_openmp(argc, argv)) ::execv("/proc/self/exe", argv);  // no /proc: the default policy

  Registrars registrars = front_commands();
  registrars.merge(data_commands(prepare_spectocloud));
  registrars.insert({
      {"train", register_train},
      {"evaluate", register_evaluate},
      {"generate", register_generate},
      {"evaluate-generation", register_evaluate_generation},
      {"export", register_export},
      {"humanize", register_humanize},
      {"predict", register_predict},
  });
  return run(argc, argv, registrars, report_libtorch_error);
}
