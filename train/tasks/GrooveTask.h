#pragma once
// The groove humanizer as a trainer task (`task: groove`): a quantized drum
// pattern in, per-hit timing offsets and velocities out, trained on the
// Groove MIDI Dataset's windows (datasets/groove/GrooveCorpus.h) with its
// info.csv splits.
//
// Loss: a TaskLoss (losses/TaskLoss.h) over the model's outputs `offsets`
// (steps) and `velocities` (velocity / 127); every head must be masked by the
// target `mask`, so that only cells with a hit count. TaskLoss gives each
// window the mean over its hits; forward() multiplies by the window's hits,
// so loss_sum is the sum over hits (Batch::units = hits).
//
// Metrics (every split; sums over hits, so they add across batches and ranks):
//   timing_mae_ms         |predicted − real offset| in ms at the window's tempo
//   timing_baseline_ms    the same for the zero-offset baseline (the quantized part)
//   timing_ratio          timing_mae_ms / timing_baseline_ms (< 0.8 is the goal)
//   timing_mae_steps      |predicted − real offset| in steps
//   velocity_mae          |predicted − real velocity| in MIDI units (0..127)
//   velocity_baseline     the same for the TRAIN split's mean velocity of each drum class
//   velocity_ratio        velocity_mae / velocity_baseline
//   loss                  loss_sum / hits
//
// Player conditioning (model.players): each window's drummer from info.csv
// is an input, so the model learns each drummer's feel; during training a
// share of windows (model.player_dropout) is shown as "any player" (id 0), so
// the model also humanizes for an unknown player.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "core/Config.h"
#include "datasets/corpus/PrepareConfig.h"
#include "datasets/groove/GrooveDataset.h"
#include "losses/TaskLoss.h"
#include "models/GrooveModel.h"
#include "train/Task.h"

namespace kmidi::train {

struct GrooveDataConfig : config::Section {
  config::Path csv = "groove-midi/groove/info.csv";  ///< info.csv; MIDI paths resolve against its folder
  config::Path cache_dir;                            ///< windows cache; empty: no cache
  std::vector<std::string> time_signatures = {"4-4"};
  int64_t window_steps = 32;  ///< 2 bars of 16th notes
  int64_t train_hop = 16;     ///< 1 bar
  int64_t eval_hop = 32;      ///< validation and test windows do not overlap: every hit counts once
  int64_t min_hits = 4;
  int64_t max_files = 0;      ///< per split; 0: all (small values for quick tests)
  bool test_labels = true;    ///< false: the test split comes without targets (label-free evaluation)
  bool condition_on_player = true;  ///< false: every window gets player 0 ("any player")
  /// What info.csv belongs to, for `kmidi export` (no prepare config made this
  /// data); empty: the export refuses the job.
  corpus::DatasetInfo dataset;
  void visit(config::Visitor& v) override;
};

struct GrooveModelConfig : config::Section {
  int64_t d_model = 128;
  int64_t n_layers = 3;
  int64_t n_heads = 4;
  int64_t d_ff = 256;
  double dropout = 0.1;
  int64_t bar_steps = 16;  ///< position-in-bar embedding period (windows start on bar lines); 0: none
  std::vector<std::string> players;  ///< info.csv drummers the model is conditioned on; empty: none
  double player_dropout = 0.1;       ///< training: share of windows shown as "any player" (id 0)
  void visit(config::Visitor& v) override;
  models::GrooveModelOptions options() const;
};

/// The task's top-level sections: data, model, loss.
struct GrooveTaskConfig : config::Section {
  GrooveDataConfig data;
  GrooveModelConfig model;
  losses::TaskLossConfig loss;
  void visit(config::Visitor& v) override;
};

/// L1 on offsets and velocities, both masked by `mask`: the objective that
/// fits MAE metrics (configs/groove.yaml writes the same heads).
losses::TaskLossConfig default_groove_loss();

/// The trained module: the humanizer and its loss (whose learned log
/// variances train with it). Checkpoint names: "net.*", "loss.*".
class GrooveTrainableImpl : public torch::nn::Module {
 public:
  GrooveTrainableImpl(const models::GrooveModelOptions& model, const losses::TaskLossConfig& loss);
  models::GrooveModel net{nullptr};
  losses::TaskLoss loss{nullptr};
};
TORCH_MODULE(GrooveTrainable);

class GrooveTask final : public Task {
 public:
  GrooveTask(const GrooveTaskConfig& config, const TaskContext& context);
  torch::nn::Module& model() override { return *module_; }
  std::shared_ptr<const data::Dataset> dataset(Split split) override;
  ForwardOutput forward(const data::Batch& batch, bool training) override;
  MetricValues finalize(const MetricValues& sums, Split split) const override;
  /// offsets [B, T, C] (steps), offsets_ms [B, T, C], velocities [B, T, C]
  /// (MIDI units 1..127), hits [B, T, C] (the input: which cells matter).
  data::NamedTensors predict(const data::Batch& batch) override;
  std::map<std::string, std::string> artifacts() const override;
  std::string throughput_unit() const override { return "hits"; }
  std::vector<GraphExport> graphs() override;

  GrooveTrainable module() { return module_; }
  /// Mean velocity per drum class (MIDI units) over the train split's hits.
  const std::array<double, groove::kDrumClasses>& baseline_velocities() const { return baseline_velocity_; }

 private:
  /// The batch's player ids (undefined without players); in training, some become 0.
  at::Tensor player_input(const data::Batch& batch, bool training) const;

  GrooveTaskConfig config_;
  GrooveTrainable module_{nullptr};
  std::shared_ptr<groove::GrooveDataset> train_, validation_, test_;
  std::array<double, groove::kDrumClasses> baseline_velocity_{};
  bool targets_checked_ = false;
};

}  // namespace kmidi::train
