#include "losses/Chamfer.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace kmidi::losses {
namespace {

void check_point_sets(const at::Tensor& pred, const at::Tensor& target) {
  if (pred.dim() != 3 || target.dim() != 3 || pred.size(0) != target.size(0) || pred.size(2) != target.size(2)) {
    std::ostringstream os;
    os << "chamfer: expected pred [B, N, D] and target [B, M, D], got " << pred.sizes() << " and "
       << target.sizes();
    throw std::invalid_argument(os.str());
  }
  if (pred.size(1) == 0 || target.size(1) == 0) throw std::invalid_argument("chamfer: empty point set");
}

/// For each row of `a` [B, N, D], the index of its nearest row in `b` [B, M, D].
at::Tensor nearest_indices(const at::Tensor& a, const at::Tensor& b, int64_t chunk) {
  torch::NoGradGuard no_grad;
  const at::Tensor b_sq = b.pow(2).sum(-1).unsqueeze(1);  // [B, 1, M]
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < a.size(1); start += chunk) {
    const int64_t len = std::min(chunk, a.size(1) - start);
    const at::Tensor rows = a.narrow(1, start, len);
    // ‖a‖² − 2 a·b + ‖b‖²; the ‖a‖² term does not change the argmin.
    const at::Tensor d = b_sq - 2.0 * torch::bmm(rows, b.transpose(1, 2));
    parts.push_back(d.argmin(-1));
  }
  return torch::cat(parts, 1);
}

at::Tensor gathered_sq_distance(const at::Tensor& a, const at::Tensor& b, const at::Tensor& index) {
  const at::Tensor nearest = b.gather(1, index.unsqueeze(-1).expand({-1, -1, b.size(2)}));
  return (a - nearest).pow(2).sum(-1);
}

}  // namespace

ChamferMatch chamfer_match(const at::Tensor& pred, const at::Tensor& target, int64_t chunk) {
  check_point_sets(pred, target);
  if (chunk <= 0) throw std::invalid_argument("chamfer: chunk must be positive");
  ChamferMatch m;
  m.pred_nearest = nearest_indices(pred, target, chunk);
  m.target_nearest = nearest_indices(target, pred, chunk);
  m.pred_to_target = gathered_sq_distance(pred, target, m.pred_nearest);
  m.target_to_pred = gathered_sq_distance(target, pred, m.target_nearest);
  return m;
}

at::Tensor chamfer_distance(const at::Tensor& pred, const at::Tensor& target, int64_t chunk) {
  const ChamferMatch m = chamfer_match(pred, target, chunk);
  return m.pred_to_target.mean(1) + m.target_to_pred.mean(1);
}

at::Tensor chamfer_distance_bruteforce(const at::Tensor& pred, const at::Tensor& target) {
  check_point_sets(pred, target);
  const at::Tensor d = (pred.unsqueeze(2) - target.unsqueeze(1)).pow(2).sum(-1);  // [B, N, M]
  return std::get<0>(d.min(2)).mean(1) + std::get<0>(d.min(1)).mean(1);
}

}  // namespace kmidi::losses
