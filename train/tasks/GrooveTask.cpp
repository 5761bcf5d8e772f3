#include "train/tasks/GrooveTask.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/Errors.h"
#include "core/Strings.h"
#include "models/GrooveModel.h"

namespace kmidi::train {

using groove::kDrumClasses;

void GrooveDataConfig::visit(config::Visitor& v) {
  v.field("csv", csv, config::Spec("Groove MIDI Dataset info.csv (MIDI paths resolve against its folder)").data_path());
  v.field("cache_dir", cache_dir, config::Spec("folder for the windows cache (empty: parse the MIDI files every run)"));
  v.field("time_signatures", time_signatures,
          config::Spec("info.csv time_signature values to use; the 16-steps-per-bar grid assumes 4-4"));
  v.field("window_steps", window_steps, config::Spec("window length in 16th-note steps (32 = 2 bars of 4/4)").positive());
  v.field("train_hop", train_hop, config::Spec("steps between training window starts").positive());
  v.field("eval_hop", eval_hop, config::Spec("steps between validation/test window starts").positive());
  v.field("min_hits", min_hits, config::Spec("windows with fewer hits are dropped").non_negative());
  v.field("max_files", max_files, config::Spec("per split: use only the first N performances (0: all)").non_negative());
  v.field("test_labels", test_labels, config::Spec("false: the test split has no targets (label-free evaluation)"));
  v.field("condition_on_player", condition_on_player,
          config::Spec("with model.players: false gives every window player 0 (any player), e.g. to measure "
                       "the humanizer for an unknown drummer"));
  v.section("dataset", dataset,
            config::Spec("the data set info.csv belongs to, {id, license, version}: `kmidi export` copies it into "
                         "registry.json and refuses a job without it"));
  v.check(!time_signatures.empty(), "time_signatures", "needs at least one time signature, e.g. [4-4]");
}

void GrooveModelConfig::visit(config::Visitor& v) {
  v.field("d_model", d_model, config::Spec("encoder width").positive());
  v.field("n_layers", n_layers, config::Spec("encoder blocks").positive());
  v.field("n_heads", n_heads, config::Spec("attention heads; must divide d_model").positive());
  v.field("d_ff", d_ff, config::Spec("MLP hidden width").positive());
  v.field("dropout", dropout, config::Spec("dropout probability").min(0.0).less_than(1.0));
  v.field("bar_steps", bar_steps,
          config::Spec("embed each step's position in the bar, step mod bar_steps (16: 4/4 in 16ths); 0: none")
              .non_negative());
  v.field("players", players,
          config::Spec("info.csv drummers to condition on (player ids 1..N in this order; 0 is any player); "
                       "empty: no player input"));
  v.field("player_dropout", player_dropout,
          config::Spec("training: probability that a window is shown as player 0 (any player)").min(0.0).less_than(1.0));
  for (size_t i = 0; i < players.size(); ++i) {
    v.check(!players[i].empty(), "players", "entry " + std::to_string(i) + " is empty");
    v.check(std::find(players.begin(), players.begin() + static_cast<std::ptrdiff_t>(i), players[i]) ==
                players.begin() + static_cast<std::ptrdiff_t>(i),
            "players", "'" + players[i] + "' is listed twice");
  }
  v.check(d_model % n_heads == 0, "n_heads", "must divide d_model (" + std::to_string(d_model) + ")");
  v.check((d_model / n_heads) % 2 == 0, "n_heads", "d_model / n_heads must be even (rotary positions)");
}

models::GrooveModelOptions GrooveModelConfig::options() const {
  models::GrooveModelOptions o;
  o.drum_classes = kDrumClasses;
  o.num_styles = 0;
  o.bar_steps = bar_steps;
  o.num_players = static_cast<int64_t>(players.size());
  o.encoder.d_model = d_model;
  o.encoder.n_layers = n_layers;
  o.encoder.n_heads = n_heads;
  o.encoder.d_ff = d_ff;
  o.encoder.dropout = dropout;
  return o;
}

void GrooveTaskConfig::visit(config::Visitor& v) {
  v.section("data", data);
  v.section("model", model);
  v.section("loss", loss);
  if (!v.reading()) return;
  for (const losses::HeadConfig& h : loss.heads) {
    v.check(h.name == "offsets" || h.name == "velocities", "loss",
            "head '" + h.name + "': the groove model's outputs are offsets and velocities");
    v.check(h.mask == "mask", "loss",
            "head '" + h.name + "' needs `mask: mask`: only cells with a hit have targets");
  }
}

losses::TaskLossConfig default_groove_loss() {
  losses::TaskLossConfig c;
  for (const char* name : {"offsets", "velocities"}) {
    losses::HeadConfig h;
    h.name = name;
    h.task = "regression";
    h.loss = "l1";
    h.mask = "mask";
    c.heads.push_back(h);
  }
  return c;
}

GrooveTrainableImpl::GrooveTrainableImpl(const models::GrooveModelOptions& model, const losses::TaskLossConfig& l) {
  net = register_module("net", models::GrooveModel(model));
  loss = register_module("loss", losses::TaskLoss(l));
}

namespace {

std::shared_ptr<groove::GrooveDataset> load_split(const GrooveDataConfig& d, const std::vector<std::string>& players,
                                                  const char* split, int64_t hop, bool labelled,
                                                  groove::VelocityStats* stats) {
  groove::WindowSettings w;
  w.steps = d.window_steps;
  w.hop = hop;
  w.min_hits = d.min_hits;
  const auto sources = groove::read_groove_manifest(d.csv.str(), split, d.time_signatures, d.max_files);
  if (sources.empty()) {
    throw DataError(d.csv.str() + ": no " + std::string(split) + " performances with time signature " +
                    strings::join(d.time_signatures, ", "));
  }
  groove::GrooveSplit s = groove::load_groove_split(sources, w, split, d.cache_dir.str());
  spdlog::info("groove {}: {} windows of {} performances{}", split, s.items.size(), s.files,
               s.from_cache ? " (cached)" : "");
  if (stats) *stats = s.velocities;
  try {
    return std::make_shared<groove::GrooveDataset>(std::move(s.items), d.window_steps, labelled, players,
                                                   d.condition_on_player);
  } catch (const DataError& e) {
    throw DataError(d.csv.str() + " (" + split + " split): " + e.what() +
                    "; add the player to model.players or set data.condition_on_player: false");
  }
}

std::vector<std::string> class_names() {
  const auto& names = groove::drum_class_names();
  return std::vector<std::string>(names.begin(), names.end());
}

/// |a − b| summed where mask is 1.
at::Tensor masked_abs_sum(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  return ((a - b).abs() * mask).sum();
}

}  // namespace

GrooveTask::GrooveTask(const GrooveTaskConfig& config, const TaskContext& context) : config_(config) {
  if (config_.loss.heads.empty()) config_.loss = default_groove_loss();
  const GrooveDataConfig& d = config_.data;
  groove::VelocityStats train_stats;
  const std::vector<std::string>& players = config_.model.players;
  train_ = load_split(d, players, "train", d.train_hop, true, &train_stats);
  validation_ = load_split(d, players, "validation", d.eval_hop, true, nullptr);
  test_ = load_split(d, players, "test", d.eval_hop, d.test_labels, nullptr);
  for (int c = 0; c < kDrumClasses; ++c) baseline_velocity_[static_cast<size_t>(c)] = train_stats.mean(c);
  module_ = GrooveTrainable(config_.model.options(), config_.loss);
}

std::shared_ptr<const data::Dataset> GrooveTask::dataset(Split split) {
  switch (split) {
    case Split::kTrain: return train_;
    case Split::kValidation: return validation_;
    case Split::kTest: return test_;
  }
  return nullptr;
}

at::Tensor GrooveTask::player_input(const data::Batch& batch, bool training) const {
  if (!batch.inputs.contains("player")) return {};
  at::Tensor player = batch.inputs.at("player");
  const double p = config_.model.player_dropout;
  if (training && p > 0) {
    // Windows shown as "any player" teach the model to humanize for an unknown drummer.
    player = player * (torch::rand({player.size(0)}, torch::dtype(torch::kFloat).device(player.device())) >= p)
                          .to(torch::kLong);
  }
  return player;
}

ForwardOutput GrooveTask::forward(const data::Batch& batch, bool training) {
  const at::Tensor& hits = batch.inputs.at("hits");
  const at::Tensor& tempo = batch.inputs.at("tempo");
  auto [offsets, velocities, style] = module_->net->forward(hits, tempo, player_input(batch, training));
  data::NamedTensors outputs;
  outputs.set("offsets", offsets.to(torch::kFloat));
  outputs.set("velocities", velocities.to(torch::kFloat));
  if (!targets_checked_) {
    losses::validate_targets(config_.loss, outputs, batch.targets);
    targets_checked_ = true;
  }
  const at::Tensor& mask = batch.targets.at("mask");
  const losses::LossResult r = module_->loss->forward(outputs, batch.targets);
  ForwardOutput out;
  out.loss_sum = (r.per_sample * mask.sum({1, 2})).sum();

  torch::NoGradGuard no_grad;
  const at::Tensor step_ms = (15000.0 / (tempo.to(torch::kFloat) * 200.0)).view({-1, 1, 1});  // [B, 1, 1]
  const at::Tensor real_offsets = batch.targets.at("offsets");
  const at::Tensor real_velocities = batch.targets.at("velocities") * 127.0;
  const at::Tensor predicted = outputs.at("offsets").detach();
  const at::Tensor baseline =
      torch::tensor(std::vector<double>(baseline_velocity_.begin(), baseline_velocity_.end()), torch::kDouble)
          .to(mask.device(), torch::kFloat)
          .view({1, 1, kDrumClasses});
  out.sums.emplace_back("timing_abs_ms", masked_abs_sum(predicted * step_ms, real_offsets * step_ms, mask));
  out.sums.emplace_back("timing_zero_ms", (real_offsets.abs() * step_ms * mask).sum());
  out.sums.emplace_back("timing_abs_steps", masked_abs_sum(predicted, real_offsets, mask));
  out.sums.emplace_back("velocity_abs", masked_abs_sum(outputs.at("velocities").detach() * 127.0, real_velocities, mask));
  out.sums.emplace_back("velocity_baseline_abs", masked_abs_sum(baseline.expand_as(mask), real_velocities, mask));
  return out;
}

MetricValues GrooveTask::finalize(const MetricValues& sums, Split split) const {
  MetricValues m = Task::finalize(sums, split);
  const double hits = sums.at("units");
  if (hits <= 0) return m;
  m["timing_mae_ms"] = sums.at("timing_abs_ms") / hits;
  m["timing_baseline_ms"] = sums.at("timing_zero_ms") / hits;
  m["timing_mae_steps"] = sums.at("timing_abs_steps") / hits;
  m["velocity_mae"] = sums.at("velocity_abs") / hits;
  m["velocity_baseline"] = sums.at("velocity_baseline_abs") / hits;
  if (m["timing_baseline_ms"] > 0) m["timing_ratio"] = m["timing_mae_ms"] / m["timing_baseline_ms"];
  if (m["velocity_baseline"] > 0) m["velocity_ratio"] = m["velocity_mae"] / m["velocity_baseline"];
  return m;
}

data::NamedTensors GrooveTask::predict(const data::Batch& batch) {
  const at::Tensor& hits = batch.inputs.at("hits");
  const at::Tensor& tempo = batch.inputs.at("tempo");
  auto [offsets, velocities, style] = module_->net->forward(hits, tempo, player_input(batch, false));
  const at::Tensor step_ms = (15000.0 / (tempo.to(torch::kFloat) * 200.0)).view({-1, 1, 1});
  const at::Tensor mask = hits.to(torch::kFloat);
  data::NamedTensors out;
  out.set("offsets", offsets.to(torch::kFloat) * mask);
  out.set("offsets_ms", offsets.to(torch::kFloat) * step_ms * mask);
  out.set("velocities", torch::clamp(torch::round(velocities.to(torch::kFloat) * 127.0), 1, 127) * mask);
  out.set("hits", mask);
  return out;
}

std::map<std::string, std::string> GrooveTask::artifacts() const {
  nlohmann::ordered_json j;
  std::vector<int> pitches;
  for (int c = 0; c < kDrumClasses; ++c) pitches.push_back(groove::class_pitch(c));
  j["drum_classes"] = class_names();
  j["class_pitches"] = pitches;
  j["steps_per_quarter"] = groove::kStepsPerQuarter;
  j["window_steps"] = config_.data.window_steps;
  j["inputs"] = {{"hits", "[B, T, C] 1 where a class is struck"}, {"tempo", "[B, 1] bpm / 200"}};
  if (!config_.model.players.empty()) {
    j["inputs"]["player"] = "[B] int64: 0 any player, i + 1 for players[i]";
    j["players"] = config_.model.players;
  }
  j["outputs"] = {{"offsets", "[B, T, C] steps in [-0.5, 0.5]"}, {"velocities", "[B, T, C] velocity / 127"}};
  return {{"groove.json", j.dump(2) + "\n"}};
}

std::vector<GraphExport> GrooveTask::graphs() {
  GraphExport g;
  g.description = "groove humanizer: quantized hits and tempo to per-hit timing offsets and velocities";
  models::GrooveModel net = module_->net;
  g.emit = [net](onnx::ModelBuilder& b) mutable { models::emit_groove_model(b, *net); };
  const auto num_players = static_cast<int64_t>(config_.model.players.size());
  g.sample_inputs = [num_players](int64_t batch, int64_t length, uint64_t seed) {
    at::Generator gen = at::detail::createCPUGenerator(seed);
    data::NamedTensors in;
    in.set("hits", (torch::rand({batch, length, kDrumClasses}, gen) < 0.25).to(torch::kFloat));
    in.set("tempo", (60.0 + torch::rand({batch, 1}, gen) * 140.0) / 200.0);  // 60..200 bpm
    if (num_players > 0) in.set("player", torch::randint(0, num_players + 1, {batch}, gen, torch::kLong));
    return in;
  };
  g.reference = [net](const data::NamedTensors& inputs) mutable {
    torch::NoGradGuard no_grad;
    const bool was_training = net->is_training();
    net->eval();
    const c10::Device device = net->hit_embedding->weight.device();
    const at::Tensor player = inputs.contains("player") ? inputs.at("player").to(device) : at::Tensor();
    auto [offsets, velocities, style] =
        net->forward(inputs.at("hits").to(device), inputs.at("tempo").to(device), player);
    net->train(was_training);
    data::NamedTensors out;
    out.set("offsets", offsets.to(torch::kCPU, torch::kFloat));
    out.set("velocities", velocities.to(torch::kCPU, torch::kFloat));
    return out;
  };
  const int64_t w = config_.data.window_steps;
  g.parity_shapes = {{1, w}, {4, w}, {2, 2 * w}, {3, 7}};
  g.metadata = {{"kmidi.groove.window_steps", std::to_string(w)},
                {"kmidi.groove.drum_classes", strings::join(class_names(), ",")}};
  if (num_players > 0) g.metadata["kmidi.groove.players"] = strings::join(config_.model.players, ",");
  g.registry_task = "groove_prediction";
  g.registry_input_size = kDrumClasses;
  g.registry_output_size = 2 * kDrumClasses;
  return {g};
}

}  // namespace kmidi::train
