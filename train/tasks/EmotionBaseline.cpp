#include "train/tasks/EmotionBaseline.h"

#include <torch/torch.h>

#include <cstring>
#include <stdexcept>

#include "models/LogisticRegression.h"

namespace kmidi::train {
namespace {

constexpr int64_t kFeatures = static_cast<int64_t>(features::kEmotionFeatureSize);

/// The three targets, as class ids: quadrant 0..3, and 1 where arousal / valence is positive.
enum Target { kQuadrant = 0, kArousal = 1, kValence = 2 };
constexpr int64_t kClasses[3] = {4, 2, 2};

int64_t target_of(int64_t quadrant, Target t) {
  const auto signs = data::quadrant_signs(quadrant);  // (valence, arousal)
  switch (t) {
    case kQuadrant: return quadrant;
    case kArousal: return signs[1] > 0 ? 1 : 0;
    case kValence: return signs[0] > 0 ? 1 : 0;
  }
  return -1;
}

at::Tensor feature_matrix(const std::vector<data::EmotionClip>& clips) {
  at::Tensor x = torch::empty({static_cast<int64_t>(clips.size()), kFeatures}, torch::kFloat);
  for (size_t i = 0; i < clips.size(); ++i) {
    std::memcpy(x[static_cast<int64_t>(i)].data_ptr<float>(), clips[i].features.data(), sizeof(float) * kFeatures);
  }
  return x.to(torch::kDouble);
}

at::Tensor labels_of(const std::vector<data::EmotionClip>& clips, Target t) {
  at::Tensor y = torch::empty({static_cast<int64_t>(clips.size())}, torch::kLong);
  for (size_t i = 0; i < clips.size(); ++i) {
    if (clips[i].quadrant < 0 || clips[i].quadrant > 3) {
      throw std::invalid_argument("emotion baseline: clip " + clips[i].id + " has no quadrant label");
    }
    y[static_cast<int64_t>(i)] = target_of(clips[i].quadrant, t);
  }
  return y;
}

double accuracy(const models::LogisticRegression& model, const at::Tensor& x, const at::Tensor& y) {
  return model.predict(x).eq(y).to(torch::kDouble).mean().item<double>();
}

bool labelled(const std::vector<data::EmotionClip>* clips) {
  if (!clips || clips->empty()) return false;
  for (const auto& c : *clips) {
    if (c.quadrant < 0) return false;
  }
  return true;
}

}  // namespace

struct EmotionBaseline::Fitted {
  models::LogisticRegression model;
};

EmotionBaseline::~EmotionBaseline() = default;
EmotionBaseline::EmotionBaseline(EmotionBaseline&&) noexcept = default;

EmotionBaseline::EmotionBaseline(const std::vector<data::EmotionClip>& train,
                                 const std::vector<data::EmotionClip>* validation) {
  if (!labelled(&train)) throw std::invalid_argument("emotion baseline: the train split must be labelled and non-empty");
  const at::Tensor raw = feature_matrix(train);
  const at::Tensor mean = raw.mean(0);
  at::Tensor std = (raw - mean).pow(2).mean(0).sqrt();  // population std, as EmotionTask's
  std = torch::where(std > 1e-6, std, torch::ones_like(std));
  mean_.assign(mean.data_ptr<double>(), mean.data_ptr<double>() + kFeatures);
  std_.assign(std.data_ptr<double>(), std.data_ptr<double>() + kFeatures);
  const at::Tensor x = (raw - mean) / std;
  const bool choose = labelled(validation);
  const at::Tensor x_validation = choose ? (feature_matrix(*validation) - mean) / std : at::Tensor();

  for (Target t : {kQuadrant, kArousal, kValence}) {
    models::LogisticRegressionOptions o;
    o.num_classes = kClasses[t];
    const at::Tensor y = labels_of(train, t);
    if (!choose) {
      o.l2 = kDefaultL2;
      classifiers_.push_back({models::LogisticRegression::fit(x, y, o)});
      l2_[static_cast<size_t>(t)] = o.l2;
      continue;
    }
    const at::Tensor y_validation = labels_of(*validation, t);
    double best = -1.0;
    for (double l2 : kL2Grid) {
      o.l2 = l2;
      models::LogisticRegression model = models::LogisticRegression::fit(x, y, o);
      const double a = accuracy(model, x_validation, y_validation);
      if (a > best) {
        best = a;
        l2_[static_cast<size_t>(t)] = l2;
        if (classifiers_.size() > static_cast<size_t>(t)) classifiers_.back() = {std::move(model)};
        else classifiers_.push_back({std::move(model)});
      }
    }
  }
}

std::map<std::string, double> EmotionBaseline::metrics(const std::vector<data::EmotionClip>& clips) const {
  if (!labelled(&clips)) throw std::invalid_argument("emotion baseline: metrics need labelled, non-empty clips");
  const at::Tensor mean = torch::tensor(mean_, torch::kDouble), std = torch::tensor(std_, torch::kDouble);
  const at::Tensor x = (feature_matrix(clips) - mean) / std;
  static const char* const kNames[3] = {"baseline_quadrant_accuracy", "baseline_arousal_accuracy",
                                        "baseline_valence_accuracy"};
  std::map<std::string, double> out;
  for (Target t : {kQuadrant, kArousal, kValence}) {
    out[kNames[t]] = accuracy(classifiers_[static_cast<size_t>(t)].model, x, labels_of(clips, t));
  }
  return out;
}

}  // namespace kmidi::train
