#include "train/Evaluator.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "core/Errors.h"
#include "core/Files.h"
#include "train/DataLoader.h"
#include "train/Distributed.h"
#include "train/Sampler.h"
#include "train/TrainConfig.h"

namespace kmidi::train {
namespace {

nlohmann::json to_json(const at::Tensor& t) {
  if (t.dim() == 0) {
    if (t.scalar_type() == at::kBool) return t.item<bool>();
    if (at::isIntegralType(t.scalar_type(), /*includeBool=*/false)) return t.item<int64_t>();
    return t.item<double>();
  }
  nlohmann::json list = nlohmann::json::array();
  for (int64_t i = 0; i < t.size(0); ++i) list.push_back(to_json(t[i]));
  return list;
}

}  // namespace

struct PredictionWriter::Impl {
  files::AtomicFile file;
  explicit Impl(const std::string& path) : file(path) {}
};

PredictionWriter::PredictionWriter(const std::string& path) : impl_(std::make_unique<Impl>(path)) {}
PredictionWriter::~PredictionWriter() = default;
const std::string& PredictionWriter::path() const { return impl_->file.target(); }

void PredictionWriter::write(const data::Batch& batch, const data::NamedTensors& outputs,
                             const data::Dataset& dataset) {
  const auto rows = static_cast<int64_t>(batch.indices.size());
  std::vector<std::pair<std::string, at::Tensor>> host;
  for (const auto& [name, t] : outputs.items()) {
    if (t.dim() == 0 || t.size(0) != rows) {
      throw UsageError("the task's predict() output '" + name + "' has shape " + c10::str(t.sizes()) +
                       "; expected one row per item of the batch (" + std::to_string(rows) + ")");
    }
    at::Tensor cpu = t.detach().to(at::kCPU);
    if (at::isFloatingType(cpu.scalar_type())) cpu = cpu.to(at::kDouble);
    host.emplace_back(name, cpu);
  }
  std::string text;
  for (int64_t i = 0; i < rows; ++i) {
    nlohmann::ordered_json row;
    const int64_t index = batch.indices[static_cast<size_t>(i)];
    row["id"] = dataset.item_id(static_cast<size_t>(index));
    row["index"] = index;
    for (const auto& [name, t] : host) row[name] = to_json(t[i]);
    text += row.dump() + "\n";
  }
  impl_->file.write(text);
  rows_ += rows;
}

void PredictionWriter::finish() { impl_->file.commit(); }

EvaluationSettings evaluation_settings(const TrainConfig& config, int world_size, Precision precision) {
  const int64_t accumulation = std::max<int64_t>(1, config.grad_accumulation);
  const int64_t ranks = std::max(1, world_size);
  EvaluationSettings settings;
  settings.batch_size = config.eval_batch_size > 0 ? config.eval_batch_size
                                                   : std::max<int64_t>(1, config.batch_size / (ranks * accumulation));
  if (config.eval_max_batches > 0) {
    // Counted in one process's batches, so that every world size reads the same items.
    const int64_t one_process_batch =
        config.eval_batch_size > 0 ? config.eval_batch_size : std::max<int64_t>(1, config.batch_size / accumulation);
    settings.max_items = config.eval_max_batches * one_process_batch;
  }
  settings.prefetch = config.prefetch;
  settings.precision = precision;
  return settings;
}

EvaluationResult evaluate_split(Task& task, Split split, DistributedContext& context,
                                const EvaluationSettings& settings, PredictionWriter* predictions) {
  const auto start = std::chrono::steady_clock::now();
  std::shared_ptr<const data::Dataset> dataset = task.dataset(split);
  if (!dataset) throw UsageError(std::string("the task has no ") + split_name(split) + " data");
  EvaluationResult result;
  result.split = split;
  result.labelled = dataset->has_targets();

  const auto size = static_cast<int64_t>(dataset->size());
  const int64_t evaluated = settings.max_items > 0 ? std::min(size, settings.max_items) : size;
  if (result.labelled && evaluated < context.world_size()) {
    // Every rank must contribute the same sums to the all-reduce below.
    throw UsageError(std::string("the ") + split_name(split) + " split has " + std::to_string(size) + " items" +
                     (evaluated < size ? " of which " + std::to_string(evaluated) + " are evaluated" : std::string()) +
                     ", fewer than the " + std::to_string(context.world_size()) + " ranks evaluating it" +
                     (evaluated < size ? "; raise train.eval_max_batches" : ""));
  }
  // The first `evaluated` items, shared among the ranks: the same set whatever the world size.
  auto batches = evaluation_batches(evaluated, settings.batch_size, context.rank(), context.world_size());
  torch::nn::Module& model = task.model();
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;

  std::map<std::string, at::Tensor> sums;  // accumulated on the device: no sync per batch
  int64_t units = 0, items = 0;
  DataLoader loader(dataset, std::move(batches), settings.prefetch);
  try {
    while (auto batch = loader.next()) {
      data::Batch b = batch->to(context.device());
      items += static_cast<int64_t>(b.indices.size());
      if (result.labelled) {
        ForwardOutput out =
            with_autocast(settings.precision, context.device(), [&] { return task.forward(b, /*training=*/false); });
        units += b.units;
        auto add = [&](const std::string& name, const at::Tensor& value) {
          require_full_precision_sum(name, value.scalar_type());
          at::Tensor v = value.detach().to(at::kDouble);
          auto it = sums.find(name);
          if (it == sums.end()) sums.emplace(name, v.clone());
          else it->second.add_(v);
        };
        add("loss_sum", out.loss_sum);
        for (const auto& [name, value] : out.sums) add(name, value);
      }
      if (predictions) {
        data::NamedTensors outputs = with_autocast(settings.precision, context.device(), [&] { return task.predict(b); });
        predictions->write(b, outputs, *dataset);
      }
    }
  } catch (...) {
    if (was_training) model.train();
    throw;
  }
  if (was_training) model.train();

  // One collective for everything; names are identical on every rank because
  // the task's forward() returns the same sums for every batch.
  std::vector<std::string> names;
  std::vector<double> values;
  for (const auto& [name, t] : sums) {
    names.push_back(name);
    values.push_back(t.item<double>());
  }
  values.push_back(static_cast<double>(units));
  values.push_back(static_cast<double>(items));
  context.all_reduce_sum(values);
  for (size_t i = 0; i < names.size(); ++i) result.sums[names[i]] = values[i];
  result.items = static_cast<int64_t>(values[values.size() - 1]);
  if (result.labelled) {
    result.sums["units"] = values[values.size() - 2];
    result.metrics = task.finalize(result.sums, split);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace kmidi::train
