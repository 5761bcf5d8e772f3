#pragma once
// The spectocloud family for the generic trainer (task name `spectocloud`):
// a mel excerpt with its emotion vector and midi_features to the 1200-point
// cloud, trained on a prepared cache (`kmidi prepare` with a spectocloud
// config, datasets/spectocloud/).
//
// Loss: losses/CloudLoss.h per sample (Chamfer on positions plus colour and
// property errors through the Chamfer assignment, weights from `loss`);
// units are samples, forward() returns the sum over the batch's samples.
// Metrics: loss, chamfer, color, property; on evaluation also
// mean_cloud_chamfer, the Chamfer distance of the best constant cloud (the
// mean training cloud, point by point in target order) to the same targets.

#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/Config.h"
#include "datasets/corpus/PrepareConfig.h"
#include "datasets/spectocloud/SpectocloudDataset.h"
#include "losses/CloudLoss.h"
#include "models/Spectocloud.h"
#include "train/Task.h"

namespace kmidi::train {

struct SpectocloudDataConfig : config::Section {
  config::Path cache;  ///< REQUIRED: the HDF5 cache from `kmidi prepare`
  std::string train_split = "train";
  std::string validation_split = "validation";
  std::string test_split = "test";
  /// What the cache was made from, for `kmidi export` (a spectocloud prepare
  /// config declares none); empty: the export refuses the job.
  corpus::DatasetInfo dataset;
  void visit(config::Visitor& v) override;
};

struct SpectocloudModelConfig : config::Section {
  int64_t conv_channels = 192;
  int64_t d_model = 64;
  int64_t n_heads = 4;
  int64_t decoder_layers = 1;
  int64_t d_ff = 128;
  double dropout = 0.0;
  void visit(config::Visitor& v) override;
};

struct SpectocloudLossConfig : config::Section {
  double position_weight = 1.0;
  double color_weight = 1.0;
  double property_weight = 1.0;
  int64_t chunk = 256;  ///< rows of the distance matrix at a time
  void visit(config::Visitor& v) override;
};

/// The task's own top-level sections.
struct SpectocloudTaskConfig : config::Section {
  SpectocloudDataConfig data;
  SpectocloudModelConfig model;
  SpectocloudLossConfig loss;
  void visit(config::Visitor& v) override;
};

class SpectocloudTask final : public Task {
 public:
  SpectocloudTask(const SpectocloudTaskConfig& config, const TaskContext& context);

  torch::nn::Module& model() override { return *model_; }
  std::shared_ptr<const data::Dataset> dataset(Split split) override;
  ForwardOutput forward(const data::Batch& batch, bool training) override;
  MetricValues finalize(const MetricValues& sums, Split split) const override;
  /// positions [B, P, 3], colors [B, P, 4], properties [B, P, 3].
  data::NamedTensors predict(const data::Batch& batch) override;
  /// spectocloud.json: the cache's mel config, frames, points and target version.
  std::map<std::string, std::string> artifacts() const override;
  std::string throughput_unit() const override { return "samples"; }
  /// One graph (inputs spectrogram, emotion, midi_features; outputs positions,
  /// colors, properties), parity at (batch, frames) (1, T), (2, 1), (3, 33).
  std::vector<GraphExport> graphs() override;

  models::Spectocloud net() { return model_; }
  /// [P, 3] the mean training cloud (CPU).
  const at::Tensor& mean_cloud() const { return mean_cloud_; }

 private:
  SpectocloudLossConfig loss_;
  models::Spectocloud model_{nullptr};
  spectocloud::CacheHeader header_;
  std::shared_ptr<spectocloud::SpectocloudDataset> train_, validation_, test_;
  at::Tensor mean_cloud_;
};

}  // namespace kmidi::train
