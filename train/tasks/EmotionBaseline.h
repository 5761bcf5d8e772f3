#pragma once
// The emotion task's feature baseline: what plain logistic regression on the
// 128 hand-made emotion features reaches, printed beside the model's metrics
// so that a model is judged against it on the same split.
//
// Fitting (deterministic: models/LogisticRegression.h, Newton's method):
//   - features standardised with the TRAIN split's mean and population std
//     (constant features left unscaled), as the emotion model does;
//   - three classifiers: the quadrant (4 classes), the arousal sign and the
//     valence sign (2 classes each, from the quadrant);
//   - each one's L2 strength is the value of kL2Grid whose fit on the train
//     split scores best on the validation split (the smallest among ties;
//     kDefaultL2 without a labelled validation split). The test split is
//     only ever scored, never used to fit or choose.
// Metrics per labelled split: baseline_quadrant_accuracy,
// baseline_arousal_accuracy, baseline_valence_accuracy.

#include <array>
#include <map>
#include <string>
#include <vector>

#include "datasets/EmotionDataset.h"

namespace kmidi::train {

class EmotionBaseline {
 public:
  static constexpr std::array<double, 7> kL2Grid{1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0};
  static constexpr double kDefaultL2 = 1e-2;

  /// Fits on `train` (labelled, non-empty), choosing L2 on `validation`
  /// (nullptr or unlabelled: kDefaultL2). Throws std::invalid_argument when
  /// `train` has no labels.
  EmotionBaseline(const std::vector<data::EmotionClip>& train, const std::vector<data::EmotionClip>* validation);

  /// baseline_quadrant_accuracy, baseline_arousal_accuracy and
  /// baseline_valence_accuracy on `clips` (labelled, non-empty).
  std::map<std::string, double> metrics(const std::vector<data::EmotionClip>& clips) const;

  /// The L2 strengths chosen, in the order quadrant, arousal, valence.
  const std::array<double, 3>& l2() const { return l2_; }

  ~EmotionBaseline();
  EmotionBaseline(EmotionBaseline&&) noexcept;

 private:
  struct Fitted;
  std::vector<Fitted> classifiers_;  // quadrant, arousal, valence
  std::array<double, 3> l2_{};
  std::vector<double> mean_, std_;
};

}  // namespace kmidi::train
