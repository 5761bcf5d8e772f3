#pragma once
// Shared by the spectocloud data and task tests: a small prepare config over
// real data (1 POP909 song, 2 EMOPIA clips, 1 real recording) and a cache
// prepared from it once per test binary.

#include <filesystem>
#include <string>

#include "core/Config.h"
#include "datasets/spectocloud/SpectocloudPrepare.h"
#include "tests/support/TestSupport.h"

namespace kmidi::spectocloud::testing {

/// The render cache of the tests, shared by every test process (ctest runs
/// each test in its own): rendering is the slow part, renders are
/// deterministic, and render_audio.sh renames each finished WAV into place, so
/// concurrent processes never read a half file.
inline std::string shared_render_dir() {
  return (std::filesystem::temp_directory_path() / "kmidi_test_spectocloud_renders").string();
}

/// YAML of a small spectocloud prepare config writing to `out_dir`.
inline std::string small_prepare_yaml(const std::string& out_dir, const std::string& on_error = "fail",
                                      const std::string& extra_sources = "") {
  const std::string renders = shared_render_dir();
  return "kind: spectocloud\n"
         "data_root: " + std::string(KMIDI_SHARED_DATA) + "\n"
         "sources:\n"
         "  - {name: pop909, kind: pop909, root: pop909/POP909, include: ['*/*.mid'], limit: 1}\n"
         "  - {name: emopia, kind: emopia, root: emopia/EMOPIA_1.0/midis, include: ['*.mid'], limit: 2,\n"
         "     labels: emopia/EMOPIA_1.0/label.csv}\n"
         "  - {name: librosa, kind: audio, root: librosa-audio/audio, include: ['sorohanro_*.ogg']}\n" +
         extra_sources +
         "excerpt: {frames: 64, start_s: 1.0, stride_s: 4.0, max_per_file: 3}\n"
         "split: {method: hash, names: [train, validation, test], ratios: [0.5, 0.25, 0.25]}\n"
         "render: {script: " + test::source_path("scripts/render_audio.sh") + ", cache_dir: " + renders + "}\n"
         "on_error: " + on_error + "\n"
         "output: {file: " + out_dir + "/cache.h5}\n";
}

inline SpectocloudPrepareConfig parse_prepare(const std::string& yaml) {
  config::Document doc = config::Document::load_string(yaml, "test.yaml", test::scratch_dir("spectocloud-config"));
  SpectocloudPrepareConfig c;
  doc.read_into(c);
  return c;
}

/// The cache of small_prepare_yaml(), prepared once per process.
inline const std::string& small_cache() {
  static const std::string path = [] {
    const std::string dir = test::scratch_dir("spectocloud-small", test::ScratchLifetime::kProgram);
    run_spectocloud_prepare(parse_prepare(small_prepare_yaml(dir)));
    return dir + "/cache.h5";
  }();
  return path;
}

}  // namespace kmidi::spectocloud::testing
