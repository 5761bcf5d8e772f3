#pragma once
// One pass over a split without gradients: metrics for labelled data,
// predictions (optionally, and always for data without targets).

#include <cstdint>
#include <memory>
#include <string>

#include "train/Precision.h"
#include "train/Task.h"

namespace kmidi::train {

class DistributedContext;
struct TrainConfig;

struct EvaluationSettings {
  int64_t batch_size = 32;   ///< items per batch and rank
  /// Evaluate only the split's first max_items items, shared among the ranks,
  /// so that the evaluated set does not depend on the number of processes;
  /// 0: the whole split.
  int64_t max_items = 0;
  bool prefetch = true;
  Precision precision = Precision::kFp32;
};

/// The one rule for train.eval_batch_size and train.eval_max_batches, used by
/// the trainer's validation and by `kmidi evaluate` (TrainConfig.h documents
/// it): batches of eval_batch_size items per rank, else of the training
/// micro-batch batch_size / (world_size x grad_accumulation) (at least 1); with
/// eval_max_batches M > 0, only the split's first M x E items, E being one
/// process's batch (eval_batch_size, else batch_size / grad_accumulation),
/// whatever the number of ranks.
EvaluationSettings evaluation_settings(const TrainConfig& config, int world_size, Precision precision);

struct EvaluationResult {
  Split split = Split::kValidation;
  bool labelled = false;     ///< false: no targets, so no metrics
  MetricValues metrics;      ///< from Task::finalize; empty when unlabelled
  MetricValues sums;         ///< all-reduced sums, including loss_sum and units
  int64_t items = 0;         ///< over all ranks
  double seconds = 0.0;
};

/// Writes one JSON line per item: {"id": item_id, "index": i, <output>: value or nested list, ...}.
/// Committed atomically by finish(); abandoned (no file) if destroyed before.
class PredictionWriter {
 public:
  explicit PredictionWriter(const std::string& path);
  ~PredictionWriter();
  PredictionWriter(const PredictionWriter&) = delete;
  PredictionWriter& operator=(const PredictionWriter&) = delete;

  /// Rows of `outputs` (each [B, ...]) for the items of `batch`.
  void write(const data::Batch& batch, const data::NamedTensors& outputs, const data::Dataset& dataset);
  void finish();
  int64_t rows() const { return rows_; }
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t rows_ = 0;
};

/// Evaluates `split` of `task` with the model as it is (the caller swaps in
/// EMA weights if wanted). Every rank reads its shard of the split; sums are
/// all-reduced, so every rank returns the same metrics. Throws UsageError
/// when the task has no data for `split`.
EvaluationResult evaluate_split(Task& task, Split split, DistributedContext& context,
                                const EvaluationSettings& settings, PredictionWriter* predictions = nullptr);

}  // namespace kmidi::train
