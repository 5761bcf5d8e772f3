#pragma once
// Multinomial logistic regression with L2 regularisation, fitted exactly by
// Newton's method in double precision: deterministic (no sampling, no
// learning rate), the same weights on every run and thread count. Used as
// the emotion task's feature baseline (train/tasks/EmotionBaseline.h), small
// problems only (the Hessian is [(K-1)(D+1)]^2).
//
// Model: class K-1 is the reference (its weights are 0); for the others
//   logit_k(x) = b_k + w_k · x,  p = softmax(logits).
// Objective: mean cross-entropy over the N rows + lambda/2 · sum_k |w_k|^2
// (intercepts b_k are not penalised). It is strictly convex for lambda > 0,
// so the minimum is unique; fitting stops when the gradient's largest
// component is below `tolerance`.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace kmidi::models {

struct LogisticRegressionOptions {
  int64_t num_classes = 2;   ///< K >= 2
  double l2 = 1e-2;          ///< lambda > 0
  int64_t max_iterations = 100;
  double tolerance = 1e-10;  ///< on the largest gradient component
  /// Throws std::invalid_argument naming the first bad field.
  void validate() const;
};

class LogisticRegression {
 public:
  /// Fits x [N, D] (float or double) to labels [N] (int64, 0..K-1). Throws
  /// std::invalid_argument for shapes that do not fit or labels out of range.
  static LogisticRegression fit(const at::Tensor& x, const at::Tensor& labels, const LogisticRegressionOptions& options);

  /// Logits [N, K] (double); the reference class's column is 0.
  at::Tensor logits(const at::Tensor& x) const;
  /// Predicted classes [N] (int64).
  at::Tensor predict(const at::Tensor& x) const;

  /// [D, K] weights and [K] intercepts (double; column K-1 is zero).
  const at::Tensor& weights() const { return weights_; }
  const at::Tensor& intercepts() const { return intercepts_; }
  /// Newton iterations taken and the final gradient's largest component.
  int64_t iterations() const { return iterations_; }
  double gradient_norm() const { return gradient_norm_; }

 private:
  at::Tensor weights_, intercepts_;
  int64_t iterations_ = 0;
  double gradient_norm_ = 0.0;
};

}  // namespace kmidi::models
