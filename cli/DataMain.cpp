// build/libexec/data/kmidi: the commands that need no tensors, with HDF5
// shards, ONNX and downloads (prepare, validate, onnx, fetch-data). build/kmidi
// hands them here (cli/Main.cpp); LibTorch commands, and prepare with a
// `kind: spectocloud` config, go on to build/libexec/kmidi.

#include <malloc.h>

#include "cli/Commands.h"
#include "cli/HandOver.h"
#include "cli/Run.h"

int main(int argc, char** argv) {
  using namespace kmidi::cli;
  // Buffers of 256 KB and more (a shard writer's token buffer, a large file
  // being parsed) go straight back to the system when freed. glibc's default
  // raises this threshold after the first such free and then serves them
  // from the heap, where they fragment it: a 100k-file prepare held ~10 MB
  // more for that alone.
  ::mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  const auto hand_over = [argc, argv](const std::string& command) {
    exec_torch_binary(beside_this_binary(KMIDI_TORCH_BINARY), command, argc, argv);
  };
  Registrars registrars = front_commands();
  registrars.merge(data_commands([hand_over](const ConfigArgs&) { hand_over("prepare"); }));
  add_hand_overs(registrars, Part::kTorch, hand_over);
  return run(argc, argv, registrars);
}
