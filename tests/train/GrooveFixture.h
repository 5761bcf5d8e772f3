#pragma once
// TEST FIXTURE ONLY, never registered in the product's task registry.
//
// A small real regression task for the trainer's tests: predict the log
// duration of a Groove MIDI Dataset performance (info.csv, CC BY 4.0) from
// its tempo, beat/fill type, meter and drummer, with a 2-layer MLP with
// LayerNorm and dropout. The CSV's own split column gives train /
// validation / test (897 / 124 / 129 rows).

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/Config.h"
#include "datasets/Dataset.h"
#include "train/Task.h"

namespace kmidi::test {

/// The data set stated in the job (what a task whose data no prepare config made declares).
struct GrooveDatasetConfig : config::Section {
  std::string id, license, version;
  void visit(config::Visitor& v) override;
};

struct GrooveDataConfig : config::Section {
  config::Path csv = KMIDI_SHARED_DATA "/groove-midi/groove/info.csv";
  config::Path prepare;     ///< optional prepare config declaring the data set (exports read it for the registry)
  GrooveDatasetConfig dataset;  ///< optional: the data set stated here instead
  bool test_labels = true;  ///< false: the test split comes without targets
  void visit(config::Visitor& v) override;
};

struct GrooveModelConfig : config::Section {
  int64_t hidden = 32;
  double dropout = 0.1;
  void visit(config::Visitor& v) override;
};

/// The task's own top-level sections: data and model.
struct GrooveTaskConfig : config::Section {
  GrooveDataConfig data;
  GrooveModelConfig model;
  void visit(config::Visitor& v) override;
};

struct GrooveRow {
  std::string id;
  float bpm = 0, is_fill = 0, meter = 0, drummer = 0;
  double duration = 0;
};

/// Rows of info.csv in file order; throws DataError naming the line.
std::vector<GrooveRow> read_groove_csv(const std::string& path, const std::string& split);

class GrooveDataset final : public data::Dataset {
 public:
  GrooveDataset(std::vector<GrooveRow> rows, bool labelled);
  size_t size() const override { return rows_.size(); }
  data::Batch get_batch(const std::vector<int64_t>& indices) const override;
  bool has_targets() const override { return labelled_; }
  std::string item_id(size_t index) const override { return rows_.at(index).id; }
  int64_t item_cost(size_t index) const override { return static_cast<int64_t>(rows_.at(index).duration); }
  const std::vector<GrooveRow>& rows() const { return rows_; }

 private:
  std::vector<GrooveRow> rows_;
  bool labelled_;
};

struct GrooveNetImpl : torch::nn::Module {
  GrooveNetImpl(int64_t hidden, double dropout);
  /// [B, 4] -> [B]. With `norm_in_fp32`, LayerNorm gets fp32 input under autocast.
  torch::Tensor forward(torch::Tensor x, bool norm_in_fp32 = true);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, out{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(GrooveNet);

class GrooveTask final : public train::Task {
 public:
  explicit GrooveTask(const GrooveTaskConfig& config);
  torch::nn::Module& model() override { return *net_; }
  std::shared_ptr<const data::Dataset> dataset(train::Split split) override;
  train::ForwardOutput forward(const data::Batch& batch, bool training) override;
  train::MetricValues finalize(const train::MetricValues& sums, train::Split split) const override;
  data::NamedTensors predict(const data::Batch& batch) override;
  std::map<std::string, std::string> artifacts() const override;
  std::string throughput_unit() const override { return "samples"; }

  GrooveNet net() { return net_; }
  /// Test hook: the N-th training forward call (1-based) returns a NaN loss; 0 never.
  int64_t nan_at_training_forward = 0;
  int64_t training_forwards = 0;
  /// Test hook: whether autocast was on during the last training forward.
  bool autocast_seen = false;
  /// Test hook: false feeds LayerNorm whatever dtype autocast produced.
  bool norm_in_fp32 = true;

 private:
  GrooveNet net_;
  std::shared_ptr<GrooveDataset> train_, validation_, test_;
};

/// A fresh fixture task with torch seeded first (as the job does).
std::unique_ptr<GrooveTask> make_groove_task(uint64_t seed, double dropout = 0.1, bool test_labels = true);

/// A registry holding only the fixture, as "groove_fixture".
const train::TaskRegistry& fixture_registry();

}  // namespace kmidi::test
