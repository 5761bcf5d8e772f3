#pragma once
// Shared by the audio tests: the real clips of ../shared/data/librosa-audio
// and a scratch folder per test.

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/TestSupport.h"

namespace kmidi::audio::testing {

/// A real recording and its length from librosa-audio/PROVENANCE.md (0.1 s resolution).
struct RealClip {
  std::string file;
  double provenance_seconds;
};

inline const std::vector<RealClip>& real_clips() {
  static const std::vector<RealClip> clips = {
      {"Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).hq.ogg", 45.8},
      {"Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg", 133.0},
      {"Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.hq.ogg", 119.9},
      {"Kevin_MacLeod_-_Vibe_Ace.hq.ogg", 61.5},
      {"sorohanro_-_solo-trumpet-06.hq.ogg", 5.3},
      {"147793__setuniman__sweet-waltz-0i-22mi.hq.ogg", 49.2},
      {"442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime.hq.ogg", 70.8},
      {"admiralbob77_-_Choice_-_Drum-bass.hq.ogg", 25.0},
  };
  return clips;
}

inline std::string clip_path(const std::string& file) {
  return std::string(KMIDI_SHARED_DATA) + "/librosa-audio/audio/" + file;
}

/// The shortest real clip (5.3 s solo trumpet), for tests that need just one.
inline std::string trumpet_path() { return clip_path("sorohanro_-_solo-trumpet-06.hq.ogg"); }

/// A fresh test::scratch_dir() folder (removed when the test passes, kept when it fails).
class TempDir {
 public:
  explicit TempDir(const std::string& tag)
      : path_(test::scratch_dir("audio-" + tag + "-" + std::to_string(counter()++))) {}
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path path_;
};

/// A sine of `hz` at `rate`: a * sin(2 pi hz n / rate + phase), n = 0..count-1, computed in double.
inline std::vector<float> sine(double hz, int rate, int64_t count, double a = 0.5, double phase = 0.0) {
  std::vector<float> x(static_cast<size_t>(count));
  for (int64_t n = 0; n < count; ++n) {
    x[static_cast<size_t>(n)] = static_cast<float>(a * std::sin(2.0 * M_PI * hz * static_cast<double>(n) / rate + phase));
  }
  return x;
}

}  // namespace kmidi::audio::testing
