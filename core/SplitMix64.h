#pragma once
// SplitMix64's mixing, behind every seeded draw that must not depend on visit
// order, thread count or platform: crops, condition dropout, transposition,
// score augmentation, mixtures, the sampler's order and dropout masks.

#include <cstdint>

namespace kmidi::random {

/// SplitMix64's increment (2^64 / golden ratio).
inline constexpr uint64_t kSplitMixGolden = 0x9E3779B97F4A7C15ull;

/// The finaliser alone: a bijective avalanche of z.
inline constexpr uint64_t splitmix64_finalise(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// The generator's output for state x (its next state being x + golden):
/// also a well-mixed hash of x.
inline constexpr uint64_t splitmix64(uint64_t x) { return splitmix64_finalise(x + kSplitMixGolden); }

}  // namespace kmidi::random
