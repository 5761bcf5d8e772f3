#include "train/tasks/SpectocloudTask.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "core/Errors.h"
#include "losses/Chamfer.h"
#include "models/Spectocloud.h"

namespace kmidi::train {

void SpectocloudDataConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("cache", cache, Spec("HDF5 cache written by `kmidi prepare` (kind: spectocloud), relative to this config").required());
  v.field("train_split", train_split, Spec("split name of the training items"));
  v.field("validation_split", validation_split, Spec("split name of the validation items"));
  v.field("test_split", test_split, Spec("split name of the test items"));
  v.section("dataset", dataset,
            Spec("the data the cache was made from, {id, license, version}: `kmidi export` copies it into "
                 "registry.json and refuses a job without it"));
}

void SpectocloudModelConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("conv_channels", conv_channels, Spec("width of the first two convolutions").positive());
  v.field("d_model", d_model, Spec("width of frames, point queries and the decoder").positive());
  v.field("n_heads", n_heads, Spec("attention heads; must divide d_model").positive());
  v.field("decoder_layers", decoder_layers, Spec("cross-attention blocks").positive());
  v.field("d_ff", d_ff, Spec("width of the per-point MLP").positive());
  v.field("dropout", dropout, Spec("dropout probability").min(0.0).less_than(1.0));
  if (v.reading()) v.check(d_model % n_heads == 0, "n_heads", "must divide d_model");
}

void SpectocloudLossConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("position_weight", position_weight, Spec("weight of the Chamfer distance on positions").non_negative());
  v.field("color_weight", color_weight, Spec("weight of the matched colour error").non_negative());
  v.field("property_weight", property_weight, Spec("weight of the matched size/glow/depth error").non_negative());
  v.field("chunk", chunk, Spec("rows of the point distance matrix computed at a time").positive());
}

void SpectocloudTaskConfig::visit(config::Visitor& v) {
  v.section("data", data, config::Spec().required());
  v.section("model", model);
  v.section("loss", loss);
}

SpectocloudTask::SpectocloudTask(const SpectocloudTaskConfig& config, const TaskContext& context) : loss_(config.loss) {
  const std::string& cache = config.data.cache.str();
  train_ = std::make_shared<spectocloud::SpectocloudDataset>(cache, config.data.train_split);
  if (train_->size() == 0) {
    throw DataError(cache + ": no items in split '" + config.data.train_split + "'; expected a training split");
  }
  header_ = train_->header();
  auto load = [&](const std::string& split) -> std::shared_ptr<spectocloud::SpectocloudDataset> {
    auto d = std::make_shared<spectocloud::SpectocloudDataset>(cache, split);
    return d->size() > 0 ? d : nullptr;
  };
  validation_ = load(config.data.validation_split);
  test_ = load(config.data.test_split);
  models::SpectocloudOptions o;
  o.n_mels = header_.n_mels;
  o.emotion_dim = spectocloud::kEmotionDim;
  o.midi_features = spectocloud::kMidiFeatureDim;
  o.num_points = header_.points;
  o.conv_channels = config.model.conv_channels;
  o.d_model = config.model.d_model;
  o.n_heads = config.model.n_heads;
  o.decoder_layers = config.model.decoder_layers;
  o.d_ff = config.model.d_ff;
  o.dropout = config.model.dropout;
  model_ = models::Spectocloud(o);
  model_->to(context.device);
  mean_cloud_ = train_->items().positions.mean(0);
}

std::shared_ptr<const data::Dataset> SpectocloudTask::dataset(Split split) {
  switch (split) {
    case Split::kTrain: return train_;
    case Split::kValidation: return validation_;
    case Split::kTest: return test_;
  }
  return nullptr;
}

ForwardOutput SpectocloudTask::forward(const data::Batch& batch, bool training) {
  const auto [positions, colors, properties] = model_->forward(
      batch.inputs.at("spectrogram"), batch.inputs.at("emotion"), batch.inputs.at("midi_features"));
  const at::Tensor& target_positions = batch.targets.at("positions");
  losses::CloudLossWeights w;
  w.position = loss_.position_weight;
  w.color = loss_.color_weight;
  w.property = loss_.property_weight;
  // The loss in fp32 with autocast off: squared distances of nearby points
  // lose their differences in bf16, and so would the nearest-neighbour search.
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const losses::CloudLossTerms t =
      losses::cloud_loss(positions.to(torch::kFloat), colors.to(torch::kFloat), properties.to(torch::kFloat),
                         target_positions, batch.targets.at("colors"), batch.targets.at("properties"), w, loss_.chunk);
  ForwardOutput out;
  out.loss_sum = t.total.sum();
  out.sums.emplace_back("chamfer_sum", t.chamfer.sum().detach());
  out.sums.emplace_back("color_sum", t.color.sum().detach());
  out.sums.emplace_back("property_sum", t.property.sum().detach());
  if (!training) {
    const at::Tensor constant =
        mean_cloud_.to(target_positions.device()).unsqueeze(0).expand({target_positions.size(0), -1, -1}).contiguous();
    out.sums.emplace_back("mean_cloud_chamfer_sum",
                          losses::chamfer_distance(constant, target_positions, loss_.chunk).sum().detach());
  }
  return out;
}

MetricValues SpectocloudTask::finalize(const MetricValues& sums, Split) const {
  MetricValues m;
  const double units = sums.at("units");
  if (units <= 0) return m;
  m["loss"] = sums.at("loss_sum") / units;
  for (const char* name : {"chamfer", "color", "property", "mean_cloud_chamfer"}) {
    const auto it = sums.find(std::string(name) + "_sum");
    if (it != sums.end()) m[name] = it->second / units;
  }
  return m;
}

data::NamedTensors SpectocloudTask::predict(const data::Batch& batch) {
  const auto [positions, colors, properties] = model_->forward(
      batch.inputs.at("spectrogram"), batch.inputs.at("emotion"), batch.inputs.at("midi_features"));
  data::NamedTensors out;
  out.set("positions", positions.to(torch::kFloat));
  out.set("colors", colors.to(torch::kFloat));
  out.set("properties", properties.to(torch::kFloat));
  return out;
}

std::map<std::string, std::string> SpectocloudTask::artifacts() const {
  nlohmann::ordered_json j;
  j["n_mels"] = header_.n_mels;
  j["frames"] = header_.frames;
  j["points"] = header_.points;
  j["sample_rate"] = header_.sample_rate;
  j["target_version"] = header_.target_version;
  j["mel_config"] = header_.mel_config;
  return {{"spectocloud.json", j.dump(2) + "\n"}};
}

std::vector<GraphExport> SpectocloudTask::graphs() {
  GraphExport g;
  g.description = "spectocloud: mel spectrogram, emotion and midi_features to a " + std::to_string(header_.points) +
                  "-point cloud (positions, colors, properties)";
  models::Spectocloud model = model_;
  g.emit = [model](onnx::ModelBuilder& b) mutable { models::emit_spectocloud(b, *model); };
  const int64_t n_mels = header_.n_mels;
  g.sample_inputs = [n_mels](int64_t batch, int64_t length, uint64_t seed) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    data::NamedTensors in;
    in.set("spectrogram", torch::randn({batch, n_mels, length}, generator));
    in.set("emotion", torch::rand({batch, spectocloud::kEmotionDim}, generator) * 2 - 1);
    in.set("midi_features", torch::rand({batch, spectocloud::kMidiFeatureDim}, generator));
    return in;
  };
  g.reference = [model](const data::NamedTensors& inputs) mutable {
    torch::NoGradGuard no_grad;
    const bool was_training = model->is_training();
    model->eval();
    const c10::Device device = model->conv1->weight.device();
    const auto [p, c, q] = model->forward(inputs.at("spectrogram").to(device), inputs.at("emotion").to(device),
                                          inputs.at("midi_features").to(device));
    model->train(was_training);
    data::NamedTensors out;
    out.set("positions", p.to(torch::kCPU, torch::kFloat));
    out.set("colors", c.to(torch::kCPU, torch::kFloat));
    out.set("properties", q.to(torch::kCPU, torch::kFloat));
    return out;
  };
  g.parity_shapes = {{1, header_.frames}, {2, 1}, {3, 33}};
  g.metadata = {{"kmidi.spectocloud.n_mels", std::to_string(header_.n_mels)},
                {"kmidi.spectocloud.frames", std::to_string(header_.frames)},
                {"kmidi.spectocloud.points", std::to_string(header_.points)},
                {"kmidi.spectocloud.target_version", std::to_string(header_.target_version)},
                {"kmidi.spectocloud.mel_config", header_.mel_config}};
  // No registry task names point clouds; "custom". Sizes: 128 mel bands in,
  // 10 values (3 + 4 + 3) per point out.
  g.registry_task = "custom";
  g.registry_input_size = header_.n_mels;
  g.registry_output_size = 10;
  return {g};
}

}  // namespace kmidi::train
