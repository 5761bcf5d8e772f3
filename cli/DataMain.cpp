// build/libexec/data/kmidi: the commands that need no tensors, with HDF5
// shards, ONNX and downloads (prepare, validate, onnx, fetch-data). build/kmidi
// hands them here (cli/Main.cpp); LibTorch commands, and prepare with a
// `kind: spectocloud` config, go on to build/libexec/kmidi.

#include "cli/Commands.h"
#include "cli/HandOver.h"
#include "cli/Run.h"

int main(int argc, char** argv) {
  using namespace kmidi::cli;
  const auto hand_over = [argc, argv](const std::string& command) {
    exec_torch_binary(beside_this_binary(KMIDI_TORCH_BINARY), command, argc, argv);
  };
  Registrars registrars = front_commands();
  registrars.merge(data_commands([hand_over](const ConfigArgs&) { hand_over("prepare"); }));
  add_hand_overs(registrars, Part::kTorch, hand_over);
  return run(argc, argv, registrars);
}
