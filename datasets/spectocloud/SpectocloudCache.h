#pragma once
// The HDF5 cache of prepared spectocloud excerpts (one file, every split).
//
// Layout (N items, M mel bands, T frames, P points); chunks hold one item so
// reading an item touches only its own bytes:
//   /spectrogram    float32 [N, M, T]  model input (mel config, standardised per clip)
//   /emotion        float32 [N, 64]
//   /midi_features  float32 [N, 32]    zero where has_midi = 0
//   /has_midi       int8    [N]
//   /has_emotion    int8    [N]
//   /positions      float32 [N, P, 3]  target cloud (CloudTarget.h)
//   /colors         float32 [N, P, 4]
//   /properties     float32 [N, P, 3]
//   /offset_s       float64 [N]        excerpt start in its audio file
//   /id, /split, /song, /audio, /midi   UTF-8 strings [N] (midi "" without MIDI)
// File attributes: format ("kmidi-spectocloud-cache"), format_version,
// target_version (kCloudTargetVersion), n_mels, frames, points, sample_rate,
// mel_config (the MelConfig as YAML).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kmidi::spectocloud {

inline constexpr int64_t kCacheFormatVersion = 1;
inline constexpr int64_t kEmotionDim = 64;
inline constexpr int64_t kMidiFeatureDim = 32;

struct CacheHeader {
  int64_t n_mels = 0, frames = 0, points = 0;
  int64_t sample_rate = 0;
  int64_t target_version = 0;
  std::string mel_config;  ///< YAML
};

/// Items as tensors, rows aligned with the string columns.
struct CacheItems {
  at::Tensor spectrogram;    ///< [N, M, T] float32
  at::Tensor emotion;        ///< [N, 64]
  at::Tensor midi_features;  ///< [N, 32]
  at::Tensor has_midi;       ///< [N] int8
  at::Tensor has_emotion;    ///< [N] int8
  at::Tensor positions;      ///< [N, P, 3]
  at::Tensor colors;         ///< [N, P, 4]
  at::Tensor properties;     ///< [N, P, 3]
  at::Tensor offset_s;       ///< [N] float64
  std::vector<std::string> id, split, song, audio, midi;
  int64_t size() const { return static_cast<int64_t>(id.size()); }
  /// The rows `rows`, in that order.
  CacheItems select(const std::vector<int64_t>& rows) const;
};

/// Writes `items` to `path` atomically (a temporary file renamed into place).
/// Throws UsageError on inconsistent shapes, DataError on I/O failure.
void write_cache(const std::string& path, const CacheHeader& header, const CacheItems& items, int deflate_level);

struct Cache {
  CacheHeader header;
  CacheItems items;
};

/// Reads the whole cache; with `split` non-empty only that split's rows (in
/// file order). Throws DataError naming the file when it is missing, not a
/// spectocloud cache, of another format or target version, or inconsistent.
Cache read_cache(const std::string& path, const std::string& split = "");

}  // namespace kmidi::spectocloud
