// build/kmidi, the binary users run: one subcommand per job. It links only
// the core and MIDI libraries, so --help, version, inspect and registry start
// like small tools (BENCHMARKS.md). Commands that need more replace this
// process by the binary that links it (cli/HandOver.h), before their options
// are parsed: build/libexec/data/kmidi (cli/DataMain.cpp: HDF5 shards, ONNX,
// downloads) or build/libexec/kmidi (cli/TorchMain.cpp: LibTorch).

#include "cli/Commands.h"
#include "cli/HandOver.h"
#include "cli/Run.h"

int main(int argc, char** argv) {
  using namespace kmidi::cli;
  Registrars registrars = front_commands();
  add_hand_overs(registrars, Part::kData, [argv](const std::string& command) {
    exec_binary(beside_this_binary(KMIDI_DATA_BINARY), command, argv);
  });
  add_hand_overs(registrars, Part::kTorch, [argc, argv](const std::string& command) {
    exec_torch_binary(beside_this_binary(KMIDI_TORCH_BINARY), command, argc, argv);
  });
  return run(argc, argv, registrars);
}
