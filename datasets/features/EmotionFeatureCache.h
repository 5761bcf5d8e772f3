#pragma once
// A cache of emotion feature vectors (EmotionFeatures.h) keyed by the SHA-256
// of each MIDI file's bytes: computing them parses every file, reading them
// back does not. A renamed file keeps its entry; an edited file gets a new one.
// Torch-free.
//
// File layout, format_version 1 (little-endian):
//   line 1   JSON header, then '\n':
//            {"format": "kmidi.emotion_features", "format_version": 1,
//             "feature_size": 128, "layout_sha256": "<hex>", "count": N}
//            layout_sha256 is the SHA-256 of the 128 feature names joined by
//            '\n': a kmidi whose feature layout differs ignores the file and
//            rebuilds it (with a warning) instead of reading wrong columns.
//   then N records of 64 ASCII hex digits (the file's SHA-256) followed by
//   128 float32 values, sorted by hash.
// The file is replaced atomically by save(); a truncated or malformed file is
// a DataError naming it (delete it to rebuild).

#include <map>
#include <optional>
#include <string>

#include "datasets/features/EmotionFeatures.h"

namespace kmidi::features {

class EmotionFeatureCache {
 public:
  /// Opens `path`; a missing file is an empty cache.
  explicit EmotionFeatureCache(std::string path);

  /// The cached vector of the file whose bytes hash to `sha256`, if any.
  std::optional<EmotionFeatures> find(const std::string& sha256) const;
  /// Adds or replaces the vector of `sha256` (64 lower-case hex digits).
  void insert(const std::string& sha256, const EmotionFeatures& values);
  /// The vector of `midi_path` (whose bytes hash to `sha256`): from the cache,
  /// or read, computed and inserted. Throws DataError when the file cannot be
  /// read or parsed, or when its bytes no longer hash to `sha256`.
  EmotionFeatures get_or_compute(const std::string& midi_path, const std::string& sha256);

  /// Writes the cache atomically when entries were added since it was opened.
  void save();
  size_t size() const { return entries_.size(); }
  /// Entries added since the file was read.
  size_t added() const { return added_; }
  const std::string& path() const { return path_; }

  /// SHA-256 of the feature names joined by '\n'.
  static const std::string& layout_sha256();

 private:
  std::string path_;
  std::map<std::string, EmotionFeatures> entries_;
  size_t added_ = 0;
};

}  // namespace kmidi::features
