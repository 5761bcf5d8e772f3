#pragma once
// The spectocloud objective: Chamfer distance on positions plus colour and
// property errors matched through the Chamfer nearest-neighbour assignment.
//
// For sample b with predicted points p_i (i < N) and target points q_j (j < M),
// nn(i) the target nearest to p_i and nn'(j) the prediction nearest to q_j
// (squared Euclidean distance on positions, losses/Chamfer.h):
//   chamfer  = mean_i |p_i - q_nn(i)|^2 + mean_j |q_j - p_nn'(j)|^2
//   color    = mean_i mean_c (C_i,c - C*_nn(i),c)^2 + mean_j mean_c (C_nn'(j),c - C*_j,c)^2
//   property = the same with the 3 properties
//   total    = position_weight * chamfer + color_weight * color + property_weight * property
// Each point is thus scored against the target it is matched to in space, in
// both directions, so colours and properties need no order of their own.
// The assignment carries no gradient (as in Chamfer); the errors do.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace kmidi::losses {

struct CloudLossWeights {
  double position = 1.0;
  double color = 1.0;
  double property = 1.0;
};

/// Per-sample terms [B] each.
struct CloudLossTerms {
  at::Tensor total, chamfer, color, property;
};

/// pred/target positions [B, N|M, 3], colors [B, N|M, 4], properties [B, N|M, 3].
/// Throws std::invalid_argument on shape mismatches.
CloudLossTerms cloud_loss(const at::Tensor& positions, const at::Tensor& colors, const at::Tensor& properties,
                          const at::Tensor& target_positions, const at::Tensor& target_colors,
                          const at::Tensor& target_properties, const CloudLossWeights& weights, int64_t chunk = 256);

}  // namespace kmidi::losses
