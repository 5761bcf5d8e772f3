#include "datasets/TokenAugment.h"

#include <algorithm>
#include <limits>

#include "core/SplitMix64.h"

namespace kmidi::data {
namespace {

constexpr uint64_t kTranspositionSalt = 0x7A5E0F1C2B3D4E59ull;

using random::splitmix64;

}  // namespace

std::string transpose_problem(const std::vector<int64_t>& range) {
  if (range.empty()) return "";
  if (range.size() != 2) return "expected [lowest, highest] semitones, got " + std::to_string(range.size()) + " value(s)";
  if (range[0] > range[1]) return "lowest " + std::to_string(range[0]) + " is above highest " + std::to_string(range[1]);
  if (range[0] < -12 || range[1] > 12) return "semitones must lie within [-12, 12]";
  return "";
}

int draw_transposition(const TranspositionRange& range, uint64_t seed, int64_t epoch, uint64_t index) {
  if (range.highest <= range.lowest) return range.lowest;
  const uint64_t h = splitmix64(splitmix64(seed ^ kTranspositionSalt) ^ splitmix64(static_cast<uint64_t>(epoch) + 1) ^ index);
  const auto choices = static_cast<uint64_t>(range.highest - range.lowest + 1);
  return range.lowest + static_cast<int>(h % choices);
}

int transpose_pitches(int32_t* ids, size_t count, tokenizer::IdRange pitch, int shift) {
  if (shift == 0 || pitch.count == 0) return 0;
  int32_t low = std::numeric_limits<int32_t>::max(), high = -1;  // offsets inside the block
  for (size_t i = 0; i < count; ++i) {
    if (!pitch.contains(ids[i])) continue;
    low = std::min(low, ids[i] - pitch.first);
    high = std::max(high, ids[i] - pitch.first);
  }
  if (high < 0) return 0;  // no pitch in the row
  shift = std::clamp(shift, -low, pitch.count - 1 - high);
  if (shift == 0) return 0;
  for (size_t i = 0; i < count; ++i) {
    if (pitch.contains(ids[i])) ids[i] += shift;
  }
  return shift;
}

}  // namespace kmidi::data
