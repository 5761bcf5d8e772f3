#include "tests/datasets/EmopiaPrepared.h"

#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "core/Files.h"
#include "core/Hash.h"
#include "datasets/corpus/Prepare.h"
#include "datasets/corpus/PrepareConfig.h"
#include "tests/support/TestSupport.h"

namespace fs = std::filesystem;

namespace kmidi::test {

std::string emopia_midi_root() { return shared_data("emopia/EMOPIA_1.0/midis"); }

std::string emopia_prepared_dir() {
  const std::string config = source_path("configs/prepare_emopia.yaml");
  const std::string key = hash::sha256_hex(files::read_all(config)).substr(0, 16);
  const fs::path dir = fs::path(KMIDI_BINARY_DIR) / "test-data" / ("emopia-" + key);
  if (fs::exists(dir / "test.h5")) return dir.string();
  // Prepare beside the final folder and rename it into place: test processes
  // running at the same time never see a half-prepared folder.
  const fs::path temp = dir.string() + ".tmp." + std::to_string(::getpid());
  fs::remove_all(temp);
  const corpus::PrepareConfig c = corpus::load_prepare_config(
      config, {"data_root=" + std::string(KMIDI_SHARED_DATA), "output.dir=" + temp.string(), "num_workers=2"});
  corpus::run_prepare(c);
  std::error_code ec;
  fs::rename(temp, dir, ec);
  if (ec) fs::remove_all(temp);  // another process won the race; its folder is identical
  return dir.string();
}

}  // namespace kmidi::test
