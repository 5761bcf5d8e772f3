#include "cli/Commands.h"

namespace kmidi::cli {

Registrars data_commands(SpectocloudPrepare spectocloud) {
  return {
      {"onnx", register_onnx},
      {"prepare", [spectocloud](CLI::App& app) { register_prepare(app, spectocloud); }},
      {"fetch-data", register_fetch_data},
      {"validate", register_validate},
  };
}

}  // namespace kmidi::cli
