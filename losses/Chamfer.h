#pragma once
// Chamfer distance between point sets, computed in chunks so that the full
// [B, N, M] distance matrix never exists at once.
//
// Nearest neighbours are found without autograd, chunk by chunk; the loss is
// then the squared distance to the gathered neighbour, which has exactly the
// gradient of min_j ‖p_i − q_j‖² (away from ties) at O(B·(N+M)) memory.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace kmidi::losses {

struct ChamferMatch {
  at::Tensor pred_to_target;   ///< [B, N] squared distance of each predicted point to its nearest target
  at::Tensor target_to_pred;   ///< [B, M] squared distance of each target point to its nearest prediction
  at::Tensor pred_nearest;     ///< [B, N] int64 index into the target points
  at::Tensor target_nearest;   ///< [B, M] int64 index into the predicted points
};

/// Matches pred [B, N, D] and target [B, M, D]; distances are differentiable
/// with respect to both. `chunk` rows of the distance matrix at a time.
ChamferMatch chamfer_match(const at::Tensor& pred, const at::Tensor& target, int64_t chunk = 256);

/// Symmetric Chamfer distance per sample [B]:
/// mean_i min_j ‖p_i − q_j‖² + mean_j min_i ‖q_j − p_i‖².
at::Tensor chamfer_distance(const at::Tensor& pred, const at::Tensor& target, int64_t chunk = 256);

/// Reference implementation materialising the whole matrix (tests, small N).
at::Tensor chamfer_distance_bruteforce(const at::Tensor& pred, const at::Tensor& target);

}  // namespace kmidi::losses
