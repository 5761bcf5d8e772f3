#include "tests/train/GrooveFixture.h"

#include <cmath>
#include <mutex>

#include "core/Csv.h"
#include "core/Errors.h"
#include "core/Strings.h"
#include "core/TorchCompat.h"

namespace kmidi::test {

void GrooveDatasetConfig::visit(config::Visitor& v) {
  v.field("id", id, config::Spec("data set id (registry training.dataset_id)"));
  v.field("license", license, config::Spec("its licence (registry training.dataset_license)"));
  v.field("version", version, config::Spec("its release"));
}

void GrooveDataConfig::visit(config::Visitor& v) {
  v.field("csv", csv, config::Spec("Groove MIDI info.csv").data_path());
  v.field("prepare", prepare, config::Spec("prepare config that declares the data set (registry entries)"));
  v.section("dataset", dataset, config::Spec("the data set, stated in the job"));
  v.field("test_labels", test_labels, config::Spec("keep targets on the test split"));
}

void GrooveModelConfig::visit(config::Visitor& v) {
  v.field("hidden", hidden, config::Spec("hidden width").positive());
  v.field("dropout", dropout, config::Spec("dropout probability").min(0.0).less_than(1.0));
}

void GrooveTaskConfig::visit(config::Visitor& v) {
  v.section("data", data);
  v.section("model", model);
}

std::vector<GrooveRow> read_groove_csv(const std::string& path, const std::string& split) {
  const csv::Table table = csv::read(path);
  const size_t drummer = table.column("drummer"), id = table.column("id"), bpm = table.column("bpm"),
               beat_type = table.column("beat_type"), meter = table.column("time_signature"),
               duration = table.column("duration"), split_column = table.column("split");
  std::vector<GrooveRow> rows;
  for (size_t i = 0; i < table.rows.size(); ++i) {
    const auto& f = table.rows[i];
    if (f[split_column] != split) continue;
    try {
      GrooveRow r;
      r.id = f[id];
      r.bpm = std::stof(f[bpm]) / 200.0f;
      r.is_fill = f[beat_type] == "fill" ? 1.0f : 0.0f;
      const auto parts = strings::split(f[meter], '-');
      r.meter = std::stof(parts.at(0)) / std::stof(parts.at(1));
      r.drummer = std::stof(f[drummer].substr(std::string("drummer").size())) / 10.0f;
      r.duration = std::stod(f[duration]);
      rows.push_back(r);
    } catch (const std::exception& e) {
      throw DataError(table.where(i) + ": unreadable row: " + e.what());
    }
  }
  return rows;
}

GrooveDataset::GrooveDataset(std::vector<GrooveRow> rows, bool labelled) : rows_(std::move(rows)), labelled_(labelled) {}

data::Batch GrooveDataset::get_batch(const std::vector<int64_t>& indices) const {
  const auto n = static_cast<int64_t>(indices.size());
  torch::Tensor x = torch::empty({n, 4});
  torch::Tensor y = torch::empty({n});
  auto xa = x.accessor<float, 2>();
  auto ya = y.accessor<float, 1>();
  for (int64_t i = 0; i < n; ++i) {
    const GrooveRow& r = rows_.at(static_cast<size_t>(indices[static_cast<size_t>(i)]));
    xa[i][0] = r.bpm;
    xa[i][1] = r.is_fill;
    xa[i][2] = r.meter;
    xa[i][3] = r.drummer;
    ya[i] = static_cast<float>(std::log(r.duration));
  }
  data::Batch b;
  b.indices = indices;
  b.inputs.set("features", x);
  if (labelled_) b.targets.set("log_duration", y);
  b.units = n;
  b.throughput_units = n;
  return b;
}

GrooveNetImpl::GrooveNetImpl(int64_t hidden, double p) {
  fc1 = register_module("fc1", torch::nn::Linear(4, hidden));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden})));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, hidden));
  out = register_module("out", torch::nn::Linear(hidden, 1));
  dropout = register_module("dropout", torch::nn::Dropout(p));
}

torch::Tensor GrooveNetImpl::forward(torch::Tensor x, bool norm_in_fp32) {
  x = torch::relu(fc1(x));
  // Normalisation in fp32 under autocast, as mixed-precision models do.
  x = dropout(norm(norm_in_fp32 ? x.to(torch::kFloat) : x));
  x = dropout(torch::relu(fc2(x)));
  return out(x).squeeze(-1);
}

GrooveTask::GrooveTask(const GrooveTaskConfig& config)
    : net_(GrooveNet(config.model.hidden, config.model.dropout)) {
  const std::string& csv = config.data.csv.str();
  train_ = std::make_shared<GrooveDataset>(read_groove_csv(csv, "train"), true);
  validation_ = std::make_shared<GrooveDataset>(read_groove_csv(csv, "validation"), true);
  test_ = std::make_shared<GrooveDataset>(read_groove_csv(csv, "test"), config.data.test_labels);
}

std::shared_ptr<const data::Dataset> GrooveTask::dataset(train::Split split) {
  switch (split) {
    case train::Split::kTrain: return train_;
    case train::Split::kValidation: return validation_;
    case train::Split::kTest: return test_;
  }
  return nullptr;
}

train::ForwardOutput GrooveTask::forward(const data::Batch& batch, bool training) {
  if (training) {
    ++training_forwards;
    autocast_seen = compat::is_autocast_enabled(c10::DeviceType::CPU);
  }
  const torch::Tensor pred = net_->forward(batch.inputs.at("features"), norm_in_fp32).to(torch::kFloat);
  const torch::Tensor err = pred - batch.targets.at("log_duration");
  train::ForwardOutput out;
  out.loss_sum = err.pow(2).sum();
  if (training && training_forwards == nan_at_training_forward) {
    out.loss_sum = out.loss_sum * std::numeric_limits<float>::quiet_NaN();
  }
  out.sums.emplace_back("abs_error_sum", err.abs().sum().detach());
  return out;
}

train::MetricValues GrooveTask::finalize(const train::MetricValues& sums, train::Split) const {
  const double units = sums.at("units");
  train::MetricValues m;
  m["loss"] = sums.at("loss_sum") / units;
  m["mae"] = sums.at("abs_error_sum") / units;
  m["rmse"] = std::sqrt(m["loss"]);
  return m;
}

data::NamedTensors GrooveTask::predict(const data::Batch& batch) {
  data::NamedTensors out;
  out.set("log_duration", net_->forward(batch.inputs.at("features")).to(torch::kFloat));
  return out;
}

std::map<std::string, std::string> GrooveTask::artifacts() const {
  return {{"features.json",
           "{\"features\": [\"bpm/200\", \"is_fill\", \"meter\", \"drummer/10\"], \"target\": \"log(duration_s)\"}\n"}};
}

std::unique_ptr<GrooveTask> make_groove_task(uint64_t seed, double dropout, bool test_labels) {
  torch::manual_seed(seed);
  GrooveTaskConfig config;
  config.model.dropout = dropout;
  config.data.test_labels = test_labels;
  return std::make_unique<GrooveTask>(config);
}

const train::TaskRegistry& fixture_registry() {
  static train::TaskRegistry registry;
  static std::once_flag once;
  std::call_once(once, [] {
    registry.add<GrooveTaskConfig>("groove_fixture", "test fixture: Groove MIDI duration regression",
                                   [](GrooveTaskConfig& c, const train::TaskContext&) {
                                     return std::make_unique<GrooveTask>(c);
                                   });
  });
  return registry;
}

}  // namespace kmidi::test
