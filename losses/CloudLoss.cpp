#include "losses/CloudLoss.h"

#include <torch/torch.h>

#include <sstream>
#include <stdexcept>

#include "losses/Chamfer.h"

namespace kmidi::losses {
namespace {

at::Tensor gather_rows(const at::Tensor& x, const at::Tensor& index) {
  return x.gather(1, index.unsqueeze(-1).expand({-1, -1, x.size(2)}));
}

/// mean_i mean_c (a_i - b_nn(i))^2 + mean_j mean_c (a_nn'(j) - b_j)^2, per sample.
at::Tensor matched_error(const at::Tensor& pred, const at::Tensor& target, const ChamferMatch& m) {
  const at::Tensor forward = (pred - gather_rows(target, m.pred_nearest)).pow(2).mean({1, 2});
  const at::Tensor backward = (gather_rows(pred, m.target_nearest) - target).pow(2).mean({1, 2});
  return forward + backward;
}

void check_shapes(const at::Tensor& points, const at::Tensor& values, int64_t width, const char* what) {
  if (values.dim() != 3 || values.size(0) != points.size(0) || values.size(1) != points.size(1) || values.size(2) != width) {
    std::ostringstream os;
    os << "cloud_loss: " << what << " must be [" << points.size(0) << ", " << points.size(1) << ", " << width << "], got "
       << values.sizes();
    throw std::invalid_argument(os.str());
  }
}

}  // namespace

CloudLossTerms cloud_loss(const at::Tensor& positions, const at::Tensor& colors, const at::Tensor& properties,
                          const at::Tensor& target_positions, const at::Tensor& target_colors,
                          const at::Tensor& target_properties, const CloudLossWeights& weights, int64_t chunk) {
  if (positions.dim() != 3 || positions.size(2) != 3 || target_positions.dim() != 3 || target_positions.size(2) != 3) {
    std::ostringstream os;
    os << "cloud_loss: positions must be [B, N, 3], got " << positions.sizes() << " and " << target_positions.sizes();
    throw std::invalid_argument(os.str());
  }
  check_shapes(positions, colors, 4, "colors");
  check_shapes(positions, properties, 3, "properties");
  check_shapes(target_positions, target_colors, 4, "target colors");
  check_shapes(target_positions, target_properties, 3, "target properties");
  const ChamferMatch m = chamfer_match(positions, target_positions, chunk);
  CloudLossTerms t;
  t.chamfer = m.pred_to_target.mean(1) + m.target_to_pred.mean(1);
  t.color = matched_error(colors, target_colors, m);
  t.property = matched_error(properties, target_properties, m);
  t.total = weights.position * t.chamfer + weights.color * t.color + weights.property * t.property;
  return t;
}

}  // namespace kmidi::losses
