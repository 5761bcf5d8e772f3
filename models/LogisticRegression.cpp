#include "models/LogisticRegression.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace kmidi::models {
namespace {

/// [N, D+1]: a column of ones (the intercept) before x.
at::Tensor with_intercept(const at::Tensor& x) {
  return torch::cat({torch::ones({x.size(0), 1}, x.options()), x}, 1);
}

/// Logits [N, K] from the augmented rows and theta [D+1, K-1] (reference class last, 0).
at::Tensor full_logits(const at::Tensor& xa, const at::Tensor& theta) {
  return torch::cat({xa.matmul(theta), torch::zeros({xa.size(0), 1}, xa.options())}, 1);
}

struct Objective {
  double value = 0.0;
  at::Tensor probabilities;  // [N, K]
};

Objective objective(const at::Tensor& xa, const at::Tensor& theta, const at::Tensor& labels, const at::Tensor& penalty,
                    double l2) {
  const at::Tensor logits = full_logits(xa, theta);
  const at::Tensor log_p = torch::log_softmax(logits, 1);
  Objective o;
  o.value = -log_p.gather(1, labels.unsqueeze(1)).mean().item<double>() +
            0.5 * l2 * (penalty.unsqueeze(1) * theta.pow(2)).sum().item<double>();
  o.probabilities = log_p.exp();
  return o;
}

}  // namespace

void LogisticRegressionOptions::validate() const {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument("logistic regression: " + message);
  };
  require(num_classes >= 2, "num_classes must be >= 2, got " + std::to_string(num_classes));
  require(l2 > 0.0, "l2 must be positive (it makes the problem strictly convex), got " + std::to_string(l2));
  require(max_iterations > 0, "max_iterations must be positive");
  require(tolerance > 0.0, "tolerance must be positive");
}

LogisticRegression LogisticRegression::fit(const at::Tensor& x_in, const at::Tensor& labels_in,
                                           const LogisticRegressionOptions& options) {
  options.validate();
  if (!x_in.defined() || x_in.dim() != 2 || x_in.size(0) == 0) {
    throw std::invalid_argument("logistic regression: x must be a non-empty [N, D] matrix");
  }
  if (!labels_in.defined() || labels_in.dim() != 1 || labels_in.size(0) != x_in.size(0)) {
    throw std::invalid_argument("logistic regression: labels must be [N] with N = " + std::to_string(x_in.size(0)));
  }
  const int64_t n = x_in.size(0), d = x_in.size(1), k = options.num_classes, m = k - 1;
  const at::Tensor labels = labels_in.to(torch::kCPU, torch::kLong).contiguous();
  if (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= k) {
    throw std::invalid_argument("logistic regression: labels must be in 0.." + std::to_string(k - 1));
  }
  const at::Tensor xa = with_intercept(x_in.to(torch::kCPU, torch::kDouble).contiguous());
  const at::Tensor onehot = torch::one_hot(labels, k).to(torch::kDouble).narrow(1, 0, m);  // [N, K-1]
  at::Tensor penalty = torch::ones({d + 1}, torch::kDouble);
  penalty[0] = 0.0;  // the intercept is not penalised
  const at::Tensor penalty_diagonal = penalty.repeat({m});  // theta flattened class by class

  at::Tensor theta = torch::zeros({d + 1, m}, torch::kDouble);
  Objective current = objective(xa, theta, labels, penalty, options.l2);
  LogisticRegression model;
  for (int64_t it = 0; it < options.max_iterations; ++it) {
    const at::Tensor p = current.probabilities.narrow(1, 0, m);
    const at::Tensor gradient = xa.t().matmul(p - onehot) / static_cast<double>(n) +
                                options.l2 * penalty.unsqueeze(1) * theta;  // [D+1, K-1]
    model.gradient_norm_ = gradient.abs().max().item<double>();
    if (model.gradient_norm_ < options.tolerance) break;
    // Hessian block (a, b) = X^T diag(p_a (delta_ab - p_b)) X / N (+ the penalty on the diagonal).
    at::Tensor hessian = torch::zeros({m * (d + 1), m * (d + 1)}, torch::kDouble);
    for (int64_t a = 0; a < m; ++a) {
      for (int64_t b = a; b < m; ++b) {
        const at::Tensor w = p.select(1, a) * ((a == b ? 1.0 : 0.0) - p.select(1, b));
        const at::Tensor block = xa.t().matmul(xa * w.unsqueeze(1)) / static_cast<double>(n);
        hessian.narrow(0, a * (d + 1), d + 1).narrow(1, b * (d + 1), d + 1).copy_(block);
        if (a != b) hessian.narrow(0, b * (d + 1), d + 1).narrow(1, a * (d + 1), d + 1).copy_(block.t());
      }
    }
    hessian += torch::diag(options.l2 * penalty_diagonal);
    const at::Tensor g = gradient.t().reshape({-1});  // class by class, as the Hessian's rows
    const at::Tensor step = torch::linalg_solve(hessian, g).view({m, d + 1}).t();
    // Backtracking (Armijo): a full Newton step may overshoot far from the optimum.
    const double slope = g.dot(step.t().reshape({-1})).item<double>();
    double t = 1.0;
    Objective next = objective(xa, theta - t * step, labels, penalty, options.l2);
    while (next.value > current.value - 1e-4 * t * slope && t > 1e-10) {
      t *= 0.5;
      next = objective(xa, theta - t * step, labels, penalty, options.l2);
    }
    theta = theta - t * step;
    current = std::move(next);
    model.iterations_ = it + 1;
  }
  model.intercepts_ = torch::cat({theta[0], torch::zeros({1}, torch::kDouble)});
  model.weights_ = torch::cat({theta.narrow(0, 1, d), torch::zeros({d, 1}, torch::kDouble)}, 1);
  return model;
}

at::Tensor LogisticRegression::logits(const at::Tensor& x) const {
  if (!x.defined() || x.dim() != 2 || x.size(1) != weights_.size(0)) {
    throw std::invalid_argument("logistic regression: x must be [N, " + std::to_string(weights_.size(0)) + "]");
  }
  return x.to(torch::kCPU, torch::kDouble).matmul(weights_) + intercepts_;
}

at::Tensor LogisticRegression::predict(const at::Tensor& x) const { return logits(x).argmax(1); }

}  // namespace kmidi::models
