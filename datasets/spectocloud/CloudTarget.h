#pragma once
// The spectocloud training target: a deterministic 1200-point cloud derived
// from the excerpt's own log-mel spectrogram, identical every epoch.
//
// Input: D [M, T], the excerpt's mel spectrogram in dB relative to its loudest
// cell (MelConfig to_db, db_ref max, top_db R > 0, normalization none), so
// -R <= D <= 0. P = 10^(D / 10) is the relative power of a cell.
//
// Selection: the `points` cells (m, t) with the largest D. Ties (e.g. cells at
// the -R floor) go to the smaller t, then the smaller m. Points are stored in
// that order (loudest first), which is also the "rank" the mean cloud uses.
//
// Per selected cell (m, t), with e = (D[m, t] + R) / R in [0, 1]:
//   positions  x = 2 t / (T - 1) - 1 (0 when T = 1)       time
//              y = 2 m / (M - 1) - 1                        mel pitch
//              z = 2 e - 1                                  loudness
//   colors     r = centroid(t) / (M - 1), centroid(t) = sum_m m P[m, t] / sum_m P[m, t]
//                  (the frame's spectral centroid in mel bands: timbre brightness)
//              g = (1 + valence) / 2, b = (1 + arousal) / 2 (emotion[0], emotion[1];
//                  0.5 when the emotion is unknown, i.e. zero)
//              a = e
//   properties size  = e
//              glow  = P[m, t] / max_m' P[m', t] (1 for the frame's peak band)
//              depth = max(0, (L(t) + R) / R), L(t) = 10 log10(F(t) / max_t' F(t')),
//                      F(t) = sum_m P[m, t] (the frame's loudness)
// Every value lies in [-1, 1] (positions) or [0, 1] (colors, properties), as
// the model's output activations (tanh, sigmoid) can reach them.
// Computed in float64 on the CPU; stored as float32.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace kmidi::spectocloud {

/// Version of the definition above; stored in the cache. Bump on any change.
inline constexpr int64_t kCloudTargetVersion = 1;

struct CloudTarget {
  at::Tensor positions;   ///< [P, 3] float32
  at::Tensor colors;      ///< [P, 4] float32
  at::Tensor properties;  ///< [P, 3] float32
  at::Tensor cells;       ///< [P, 2] int64 (m, t) of each point, for tests and plots
};

/// The cloud of `db` [M, T] (dB, see above) with dynamic range `top_db` (R)
/// and the valence and arousal of the excerpt's emotion vector. Throws
/// UsageError when M < 2, T < 1, M * T < points, top_db <= 0 or db holds
/// values outside [-top_db, 0] (beyond 1e-3 dB of rounding).
CloudTarget cloud_target(const at::Tensor& db, double top_db, int64_t points, double valence, double arousal);

}  // namespace kmidi::spectocloud
