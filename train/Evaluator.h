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

struct EvaluationSettings {
  int64_t batch_size = 32;   ///< items per batch and rank
  int64_t max_batches = 0;   ///< per rank; 0: the whole split
  bool prefetch = true;
  Precision precision = Precision::kFp32;
};

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
