#pragma once
// What a model family gives the generic trainer. A family (MIDI generator,
// spectocloud, emotion, groove) implements Task and registers it by name in
// builtin_tasks() (train/tasks/Tasks.cpp); a job config's `task:` key selects it.
//
// Loss contract: forward() returns the SUM of per-unit losses over the
// batch's units (Batch::units: non-pad tokens, samples, points), never the
// mean. The trainer divides by the number of units of the whole optimizer
// step over every rank and micro-step, so accumulation and data parallelism
// change nothing: 2 ranks x half a batch == 1 rank x the full batch.
//
// Metric contract: everything a metric needs is a sum that adds across
// micro-batches and ranks (e.g. "correct" tokens). The trainer adds
// "loss_sum" and "units" itself, all-reduces the sums and calls finalize().

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/Config.h"
#include "datasets/Batch.h"
#include "datasets/Dataset.h"

namespace torch::nn {
class Module;
}
namespace kmidi::onnx {
class ModelBuilder;
}

namespace kmidi::train {

enum class Split { kTrain, kValidation, kTest };

/// "train", "validation", "test".
const char* split_name(Split split);
/// Parses a split name; throws UsageError naming the accepted ones.
Split parse_split(const std::string& name);

/// Named scalar tensors ([] each, detached) that add across micro-batches and ranks.
using MetricSums = std::vector<std::pair<std::string, at::Tensor>>;
/// Sums after the all-reduce, or finished metrics, by name.
using MetricValues = std::map<std::string, double>;

struct ForwardOutput {
  at::Tensor loss_sum;  ///< [] sum of per-unit losses over the batch's units; carries grad when training
  MetricSums sums;      ///< extra sums for finalize(), e.g. {"correct", n}; may be empty
};

/// What a task factory may use: the device its model will run on, this
/// process's place in the job and the job's seed.
struct TaskContext {
  c10::Device device{c10::kCPU};
  int rank = 0;
  int world_size = 1;
  uint64_t seed = 0;
};

/// One ONNX graph that a task's trained model exports to, with what the
/// export pipeline needs to prove the file computes what the model computes.
/// The emission lives beside the model's LibTorch definition (models/); a
/// task only binds it to its trained model and data.
struct GraphExport {
  /// File name suffix: "" for the main graph, e.g. "incremental" or "legacy".
  std::string suffix;
  std::string description;
  /// Adds the graph's inputs, nodes and outputs (outputs in contract order).
  std::function<void(onnx::ModelBuilder& builder)> emit;
  /// Inputs for one parity run: `batch` items, `length` along the sequence or
  /// frames axis (ignored where the graph has none), reproducible from `seed`.
  std::function<data::NamedTensors(int64_t batch, int64_t length, uint64_t seed)> sample_inputs;
  /// LibTorch's outputs for `inputs` (eval mode, fp32), named and ordered as
  /// the graph's outputs.
  std::function<data::NamedTensors(const data::NamedTensors& inputs)> reference;
  /// (batch, length) pairs that the parity check runs.
  std::vector<std::pair<int64_t, int64_t>> parity_shapes;
  /// Extra metadata_props, e.g. the tokenizer's JSON and each special id.
  std::map<std::string, std::string> metadata;
  /// The registry entry's task (../shared/CONTRACTS.md), e.g. "melody_generation".
  std::string registry_task;
  int64_t registry_input_size = 0;   ///< 1..128, as the registry schema requires
  int64_t registry_output_size = 0;  ///< 1..2^24 (the registry schema's bound)
  /// The file's stem when the engines locate the graph by name (a legacy slot
  /// such as "groovepredictor"); empty: "<model>" or "<model>_<suffix>", where
  /// <model> is the run's name (export/README.md, "The export pipeline").
  std::string file_stem;
  /// Optional check across the task's graphs, e.g. "the incremental graph
  /// reproduces the full graph's logits token by token" and "generated ids
  /// decode with nothing but the file's metadata": the generator plugs in
  /// onnx::generator_extra_check (onnx/check/GeneratorExportCheck.h; library
  /// kmidi_onnx_check). The pipeline calls it after every graph of
  /// the task passed its own checks (onnx checker, shape inference, parity),
  /// with the checked candidate files by suffix ("" for the main graph), and
  /// before any of them is renamed into place. It throws (CheckFailed) to
  /// refuse the export; then no file of the task is written.
  std::function<void(const std::map<std::string, std::string>& candidate_files)> extra_check;
};

class Task {
 public:
  virtual ~Task();

  /// The model. Its registered parameter and buffer names are the checkpoint
  /// contract. The trainer moves it to the device.
  virtual torch::nn::Module& model() = 0;

  /// The data of `split`, or nullptr when the job has none.
  virtual std::shared_ptr<const data::Dataset> dataset(Split split) = 0;

  /// Loss and metric sums of a labelled batch (already on the model's
  /// device). `training` is false during evaluation (grad is off then).
  virtual ForwardOutput forward(const data::Batch& batch, bool training) = 0;

  /// Metrics from all-reduced sums. `sums` holds "loss_sum", "units" and the
  /// task's own sums. The default gives loss = loss_sum / units.
  virtual MetricValues finalize(const MetricValues& sums, Split split) const;

  /// Outputs for a batch with or without targets (e.g. {"prediction": [B]}),
  /// written one row per item by `kmidi evaluate --predictions`. Row i of each
  /// tensor belongs to batch.indices[i].
  virtual data::NamedTensors predict(const data::Batch& batch) = 0;

  /// Files that must travel with the weights (e.g. tokenizer.json), by file
  /// name. The trainer embeds them in every checkpoint and writes them beside
  /// the checkpoints.
  virtual std::map<std::string, std::string> artifacts() const { return {}; }

  /// Called with a checkpoint's artifacts before its weights are used. The
  /// default refuses any artifact whose bytes differ from artifacts()
  /// (e.g. a checkpoint trained with another tokenizer).
  virtual void check_artifacts(const std::map<std::string, std::string>& saved) const;

  /// Whether AdamW decays this parameter. Default: tensors of rank >= 2
  /// (matrices, embeddings, kernels), not biases or normalisation weights.
  /// train.optimizer.decay_biases_and_norms overrides this to "all".
  virtual bool applies_weight_decay(const std::string& name, const at::Tensor& parameter) const;

  /// The unit of Batch::throughput_units, e.g. "tokens" or "samples".
  virtual std::string throughput_unit() const = 0;

  /// The ONNX graphs of the model in its current state; empty when the
  /// family has no export. Called after the trainer loaded the weights.
  virtual std::vector<GraphExport> graphs() { return {}; }
};

/// How to build one task: its config sections and the task from them.
struct TaskEntry {
  std::string description;
  /// A fresh config holding the task's own top-level sections (data, model, ...).
  std::function<std::unique_ptr<config::Section>()> make_config;
  /// The task from its (already read) config.
  std::function<std::unique_ptr<Task>(config::Section& config, const TaskContext& context)> make_task;
};

/// Tasks by name. The product's registry is builtin_tasks() (train/tasks/Tasks.h);
/// tests build their own with test-only fixtures.
class TaskRegistry {
 public:
  /// Registers `name` with a typed config: `factory(ConfigT&, const TaskContext&)`.
  template <class ConfigT, class Factory>
  void add(const std::string& name, std::string description, Factory factory) {
    TaskEntry entry;
    entry.description = std::move(description);
    entry.make_config = [] { return std::unique_ptr<config::Section>(new ConfigT()); };
    entry.make_task = [factory](config::Section& c, const TaskContext& ctx) -> std::unique_ptr<Task> {
      return factory(static_cast<ConfigT&>(c), ctx);
    };
    add_entry(name, std::move(entry));
  }
  void add_entry(const std::string& name, TaskEntry entry);

  /// The entry called `name`; throws config::ConfigError listing the known
  /// names (with a "did you mean" hint).
  const TaskEntry& at(const std::string& name) const;
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  std::vector<std::string> names() const;

 private:
  std::map<std::string, TaskEntry> entries_;
};

}  // namespace kmidi::train
