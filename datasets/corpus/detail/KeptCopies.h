#pragma once
// Prepare's table of kept copies (on_duplicate: drop): which file was kept
// for each content key seen so far. Private to prepare.

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace kmidi::corpus::detail {

/// A sha256 in 32 bytes.
using Key = std::array<uint8_t, 32>;

/// An open-addressing table sized once for the corpus (load <= 3/4) that
/// stores a key's first 64 bits and the kept file: 16 bytes a file. When the
/// first 64 bits match, `same(kept_file)` decides from the full keys (the
/// caller recomputes the kept file's), so two different files are never
/// taken for copies; a real duplicate costs that one recomputation.
class KeptCopies {
 public:
  explicit KeptCopies(size_t files) : prefixes_(files + files / 3 + 1), kept_(prefixes_.size(), 0) {}

  /// The file kept for `key`, or nullopt after recording `file` as its copy.
  template <class Same>
  std::optional<uint32_t> keep_first(const Key& key, uint32_t file, Same&& same) {
    uint64_t prefix = 0;
    std::memcpy(&prefix, key.data(), sizeof prefix);
    for (size_t at = prefix % prefixes_.size();; at = (at + 1) % prefixes_.size()) {
      if (kept_[at] == 0) {
        prefixes_[at] = prefix;
        kept_[at] = file + 1;  // 0 is empty
        return std::nullopt;
      }
      if (prefixes_[at] == prefix && same(kept_[at] - 1)) return kept_[at] - 1;
    }
  }

 private:
  std::vector<uint64_t> prefixes_;
  std::vector<uint32_t> kept_;  // file + 1, or 0
};

}  // namespace kmidi::corpus::detail
