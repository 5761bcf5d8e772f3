#include "train/tasks/EmotionTask.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cctype>
#include <cstring>
#include <filesystem>

#include "core/Errors.h"
#include "datasets/features/EmotionFeatureCache.h"
#include "datasets/features/ScorePerturbation.h"
#include "datasets/shards/Shard.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "onnx/Metadata.h"

namespace fs = std::filesystem;

namespace kmidi::train {
namespace {

constexpr int64_t kQuadrants = 4;
constexpr int64_t kHeadCheckItems = 8;  // items of each split the start-up head check runs on

// The score edits the runtime must apply before computing the features
// (docs/emotion_features.md): the model was trained on normalised clips only.
constexpr const char* kNormaliseKey = "kmidi.emotion.normalise";

/// data.normalise as the graphs carry it: the spec, "" when it normalises nothing ("none").
std::string normalise_metadata(const std::string& spec) {
  return features::parse_perturbations(spec).empty() ? std::string() : spec;
}

std::string confusion_name(int64_t truth, int64_t predicted) {
  return "confusion_Q" + std::to_string(truth + 1) + "_Q" + std::to_string(predicted + 1);
}

}  // namespace

void EmotionModelConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("hidden", hidden, Spec("width of the feature branch and the fusion layer").positive());
  v.field("dropout", dropout, Spec("dropout probability").min(0.0).less_than(1.0));
  v.field("d_model", d_model, Spec("token branch: transformer width").positive());
  v.field("n_layers", n_layers, Spec("token branch: transformer layers").positive());
  v.field("n_heads", n_heads, Spec("token branch: attention heads (divides d_model)").positive());
  v.field("d_ff", d_ff, Spec("token branch: feed-forward width").positive());
  v.check(d_model % n_heads == 0, "n_heads", "must divide d_model (" + std::to_string(d_model) + ")");
}

void EmotionExportConfig::visit(config::Visitor& v) {
  v.field("legacy_slot", legacy_slot,
          config::Spec("also export emotionrecognizer.onnx, the engines' static [1, 128] -> [1, 64] slot"));
}

void EmotionTaskConfig::visit(config::Visitor& v) {
  v.section("data", data, config::Spec("emotion clips: prepared shards, features, inputs"));
  v.section("model", model, config::Spec("emotion model sizes"));
  v.section("loss", loss, config::Spec("one head per model output: valence_arousal (regression), quadrant (classification)"));
  v.section("export", export_, config::Spec("extra export profiles"));
  v.check(!export_.legacy_slot || data.inputs == "features", "export",
          "legacy_slot needs data.inputs: features (the slot's input is the 128 emotion features)");
}

models::EmotionModelOptions emotion_model_options(const EmotionTaskConfig& config, int32_t vocab_size) {
  models::EmotionModelOptions mo;
  mo.use_tokens = config.data.uses_tokens();
  mo.use_features = config.data.uses_features();
  mo.vocab_size = vocab_size;
  mo.feature_dim = static_cast<int64_t>(features::kEmotionFeatureSize);
  mo.encoder.d_model = config.model.d_model;
  mo.encoder.n_layers = config.model.n_layers;
  mo.encoder.n_heads = config.model.n_heads;
  mo.encoder.d_ff = config.model.d_ff;
  mo.encoder.dropout = config.model.dropout;
  mo.hidden = config.model.hidden;
  mo.dropout = config.model.dropout;
  mo.num_quadrants = kQuadrants;
  return mo;
}

EmotionTask::EmotionTask(const EmotionTaskConfig& config, const TaskContext& context)
    : config_(config), context_(context) {
  const data::EmotionDataConfig& dc = config_.data;
  int32_t vocab_size = 0, pad_id = 0;
  if (dc.uses_tokens()) {
    const auto tok = tokenizer::Tokenizer::load((fs::path(dc.prepared.str()) / "tokenizer.json").string());
    tokenizer_json_ = tok.to_json();
    vocab_size = tok.vocab_size();
    pad_id = tok.pad_id();
  }
  const Split splits[3] = {Split::kTrain, Split::kValidation, Split::kTest};
  for (int i = 0; i < 3; ++i) {
    const std::string& shard_name = dc.splits[static_cast<size_t>(i)];
    std::vector<data::EmotionClip> clips;
    bool labelled = false;
    // Robustness runs perturb the test clips; training augmentation keeps the train scores.
    data::ClipLoading loading;
    if (splits[i] == Split::kTest) loading.perturb = features::parse_perturbations(dc.test_perturb);
    if (splits[i] == Split::kTrain) loading.keep_scores = dc.augment.enabled();
    loading.normalise = features::parse_perturbations(dc.normalise);
    if (splits[i] == Split::kTest && !dc.unlabelled_test.empty()) {
      clips = data::load_unlabelled_clips(dc, dc.unlabelled_test.str(), loading);
    } else if (splits[i] != Split::kTrain &&
               !fs::exists(fs::path(dc.prepared.str()) / shards::shard_file_name(shard_name))) {
      spdlog::info("emotion: no {} shard in {}; the {} split is empty", shard_name, dc.prepared.str(),
                   split_name(splits[i]));
      continue;
    } else {
      clips = data::load_emotion_clips(dc, shard_name, &labelled, loading);
    }
    data::EmotionDatasetOptions o;
    o.tokens = dc.uses_tokens();
    o.features = dc.uses_features();
    o.labelled = labelled;
    o.max_length = dc.max_length;
    o.pad_id = pad_id;
    if (splits[i] == Split::kTrain) o.tokens_per_batch = dc.batching.tokens_per_batch;
    if (splits[i] == Split::kTrain && dc.augment.enabled()) {
      o.augment = dc.augment;
      o.normalise = loading.normalise;
      o.augment_seed = context.seed;
      if (dc.uses_tokens()) {
        o.tokenizer = std::make_shared<const tokenizer::Tokenizer>(
            tokenizer::Tokenizer::load((fs::path(dc.prepared.str()) / "tokenizer.json").string()));
      }
    }
    auto ds = std::make_shared<data::EmotionDataset>(std::move(clips), o);
    if (splits[i] == Split::kTrain) train_ = ds;
    else if (splits[i] == Split::kValidation) validation_ = ds;
    else test_ = ds;
  }
  if (train_->size() == 0) throw DataError(dc.prepared.str() + ": the " + dc.splits[0] + " shard holds no clips");
  if (!train_->has_targets()) {
    throw DataError(dc.prepared.str() + "/" + shards::shard_file_name(dc.splits[0]) +
                    ": has no 'quadrant' label column; training needs labelled clips (prepare with a quadrant label)");
  }

  const models::EmotionModelOptions mo = emotion_model_options(config_, vocab_size);
  model_ = models::EmotionModel(mo);
  loss_ = losses::TaskLoss(config_.loss);
  root_ = std::make_shared<torch::nn::Module>("EmotionTask");
  root_->register_module("model", model_.ptr());
  root_->register_module("loss", loss_.ptr());

  if (mo.use_features) {
    // Standardisation from the training clips only: validation and test
    // statistics must not leak into the model.
    const auto& clips = train_->clips();
    at::Tensor all = torch::empty({static_cast<int64_t>(clips.size()), mo.feature_dim}, torch::kFloat);
    for (size_t i = 0; i < clips.size(); ++i) {
      std::memcpy(all[static_cast<int64_t>(i)].data_ptr<float>(), clips[i].features.data(),
                  sizeof(float) * features::kEmotionFeatureSize);
    }
    const at::Tensor d = all.to(torch::kDouble);
    const at::Tensor mean = d.mean(0);
    const at::Tensor std = (d - mean).pow(2).mean(0).sqrt();  // population std
    model_->set_feature_statistics(mean.to(torch::kFloat), std.to(torch::kFloat));
  }
  check_heads();
  if (mo.use_features) fit_baseline();
  spdlog::info("emotion: inputs {} | clips train {}, validation {}, test {}{}", dc.inputs, train_->size(),
               validation_ ? validation_->size() : 0, test_ ? test_->size() : 0,
               test_ && !test_->has_targets() ? " (unlabelled)" : "");
}

EmotionTask::~EmotionTask() = default;

void EmotionTask::fit_baseline() {
  const data::EmotionDataset* validation = emotion_dataset(Split::kValidation);
  const bool choose = validation && validation->has_targets() && validation->size() > 0;
  const EmotionBaseline baseline(train_->clips(), choose ? &validation->clips() : nullptr);
  for (Split split : {Split::kValidation, Split::kTest}) {
    const data::EmotionDataset* ds = emotion_dataset(split);
    if (!ds || !ds->has_targets() || ds->size() == 0) continue;
    const MetricValues m = baseline.metrics(ds->clips());
    baseline_metrics_[split] = m;
    spdlog::info("emotion: feature baseline (logistic regression, l2 {} / {} / {}) on {}: quadrant accuracy {:.3f}, "
                 "arousal {:.3f}, valence {:.3f}",
                 baseline.l2()[0], baseline.l2()[1], baseline.l2()[2], split_name(split),
                 m.at("baseline_quadrant_accuracy"), m.at("baseline_arousal_accuracy"),
                 m.at("baseline_valence_accuracy"));
  }
}

void EmotionTask::check_heads() {
  const bool was_training = root_->is_training();
  root_->eval();
  torch::NoGradGuard no_grad;
  for (Split split : {Split::kTrain, Split::kValidation, Split::kTest}) {
    const data::EmotionDataset* ds = emotion_dataset(split);
    if (!ds || !ds->has_targets() || ds->size() == 0) continue;
    std::vector<int64_t> first;
    for (int64_t i = 0; i < std::min<int64_t>(kHeadCheckItems, static_cast<int64_t>(ds->size())); ++i) first.push_back(i);
    const data::Batch batch = ds->get_batch(first);
    try {
      losses::validate_targets(config_.loss, outputs(batch), batch.targets);
    } catch (const UsageError& e) {
      if (was_training) root_->train();
      throw config::ConfigError(std::string("loss.heads: ") + e.what() + " (checked on the " + split_name(split) +
                                " split at start-up)");
    }
  }
  if (was_training) root_->train();
}

const data::EmotionDataset* EmotionTask::emotion_dataset(Split split) const {
  switch (split) {
    case Split::kTrain: return train_.get();
    case Split::kValidation: return validation_.get();
    case Split::kTest: return test_.get();
  }
  return nullptr;
}

std::shared_ptr<const data::Dataset> EmotionTask::dataset(Split split) {
  switch (split) {
    case Split::kTrain: return train_;
    case Split::kValidation: return validation_;
    case Split::kTest: return test_;
  }
  return nullptr;
}

data::NamedTensors EmotionTask::outputs(const data::Batch& batch) {
  const at::Tensor none;
  const at::Tensor& ids = batch.inputs.contains("input_ids") ? batch.inputs.at("input_ids") : none;
  const at::Tensor& mask = batch.inputs.contains("attention_mask") ? batch.inputs.at("attention_mask") : none;
  const at::Tensor& feats = batch.inputs.contains("features") ? batch.inputs.at("features") : none;
  auto [va, logits] = model_->forward(ids, mask, feats);
  data::NamedTensors out;
  out.set("valence_arousal", va);
  out.set("quadrant", logits);
  return out;
}

ForwardOutput EmotionTask::forward(const data::Batch& batch, bool) {
  const data::NamedTensors out = outputs(batch);
  const losses::LossResult r = loss_->forward(out, batch.targets);
  ForwardOutput result;
  result.loss_sum = r.per_sample.sum();
  for (const auto& [name, sum] : r.head_sums) result.sums.emplace_back("loss_" + name, sum.to(torch::kDouble));

  torch::NoGradGuard no_grad;
  const at::Tensor predicted = out.at("quadrant").argmax(-1);
  const at::Tensor truth = batch.targets.at("quadrant").to(torch::kLong);
  result.sums.emplace_back("quadrant_correct", predicted.eq(truth).sum().to(torch::kDouble));
  const at::Tensor cells = torch::bincount(truth * kQuadrants + predicted, {}, kQuadrants * kQuadrants).to(torch::kDouble);
  for (int64_t t = 0; t < kQuadrants; ++t) {
    for (int64_t p = 0; p < kQuadrants; ++p) result.sums.emplace_back(confusion_name(t, p), cells[t * kQuadrants + p]);
  }
  const at::Tensor va = out.at("valence_arousal").to(torch::kFloat);
  const at::Tensor target_va = batch.targets.at("valence_arousal").to(torch::kFloat);
  const at::Tensor sign_agrees = va.ge(0).eq(target_va.gt(0));  // [B, 2]
  result.sums.emplace_back("valence_correct", sign_agrees.select(1, 0).sum().to(torch::kDouble));
  // How often each valence sign is predicted: a model that calls most clips negative shows it here.
  result.sums.emplace_back("valence_positive", va.select(1, 0).ge(0).sum().to(torch::kDouble));
  result.sums.emplace_back("quadrant_valence_positive",
                           predicted.eq(0).logical_or(predicted.eq(3)).sum().to(torch::kDouble));
  result.sums.emplace_back("arousal_correct", sign_agrees.select(1, 1).sum().to(torch::kDouble));
  result.sums.emplace_back("va_squared_error", (va - target_va).pow(2).sum().to(torch::kDouble));
  return result;
}

MetricValues EmotionTask::finalize(const MetricValues& sums, Split split) const {
  MetricValues m;
  const double units = sums.at("units");
  if (units <= 0) return m;
  m["loss"] = sums.at("loss_sum") / units;
  for (const auto& head : config_.loss.heads) m["loss_" + head.name] = sums.at("loss_" + head.name) / units;
  m["quadrant_accuracy"] = sums.at("quadrant_correct") / units;
  m["valence_accuracy"] = sums.at("valence_correct") / units;
  m["valence_positive_share"] = sums.at("valence_positive") / units;
  m["quadrant_valence_positive_share"] = sums.at("quadrant_valence_positive") / units;
  m["arousal_accuracy"] = sums.at("arousal_correct") / units;
  m["va_mse"] = sums.at("va_squared_error") / (2.0 * units);
  double f1_sum = 0.0;
  for (int64_t c = 0; c < kQuadrants; ++c) {
    double predicted_as_c = 0.0, truly_c = 0.0;
    for (int64_t k = 0; k < kQuadrants; ++k) {
      predicted_as_c += sums.at(confusion_name(k, c));
      truly_c += sums.at(confusion_name(c, k));
    }
    const double tp = sums.at(confusion_name(c, c));
    const double denominator = predicted_as_c + truly_c;  // = 2 tp + fp + fn
    f1_sum += denominator > 0 ? 2.0 * tp / denominator : 0.0;
  }
  m["quadrant_macro_f1"] = f1_sum / kQuadrants;
  if (const auto it = baseline_metrics_.find(split); it != baseline_metrics_.end()) m.insert(it->second.begin(), it->second.end());
  for (int64_t t = 0; t < kQuadrants; ++t) {
    for (int64_t p = 0; p < kQuadrants; ++p) m[confusion_name(t, p)] = sums.at(confusion_name(t, p));
  }
  return m;
}

data::NamedTensors EmotionTask::predict(const data::Batch& batch) {
  const data::NamedTensors out = outputs(batch);
  const at::Tensor probabilities = torch::softmax(out.at("quadrant").to(torch::kFloat), -1);
  data::NamedTensors p;
  p.set("valence_arousal", out.at("valence_arousal").to(torch::kFloat));
  p.set("quadrant", probabilities.argmax(-1) + 1);
  p.set("quadrant_probabilities", probabilities);
  return p;
}

std::map<std::string, std::string> EmotionTask::artifacts() const {
  nlohmann::ordered_json j;
  j["inputs"] = config_.data.inputs;
  if (config_.data.uses_features()) {
    j["feature_size"] = features::kEmotionFeatureSize;
    j["feature_layout_sha256"] = features::EmotionFeatureCache::layout_sha256();
  }
  j["quadrants"] = {"Q1 (+valence, +arousal)", "Q2 (-valence, +arousal)", "Q3 (-valence, -arousal)",
                    "Q4 (+valence, -arousal)"};
  std::map<std::string, std::string> out{{"emotion_inputs.json", j.dump(2) + "\n"}};
  if (!tokenizer_json_.empty()) out["tokenizer.json"] = tokenizer_json_;
  return out;
}

std::vector<GraphExport> EmotionTask::graphs() {
  GraphExport g;
  g.suffix = "";
  g.description = "emotion recognition: " + config_.data.inputs + " -> valence_arousal [batch, 2], quadrant probabilities [batch, 4]";
  models::EmotionModel model = model_;
  g.emit = [model](onnx::ModelBuilder& b) mutable {
    model->eval();
    models::emit_emotion_model(b, *model);
  };
  const bool tokens = config_.data.uses_tokens(), feats = config_.data.uses_features();
  const int64_t vocab = model_->options().vocab_size;
  g.sample_inputs = [model, tokens, feats, vocab](int64_t batch, int64_t length, uint64_t seed) {
    at::Generator gen = at::detail::createCPUGenerator(seed);
    data::NamedTensors in;
    if (tokens) {
      in.set("input_ids", at::randint(0, vocab, {batch, length}, gen, at::TensorOptions(at::kLong)));
      at::Tensor mask = at::ones({batch, length}, at::kLong);
      // Later rows are right-padded to different lengths, as real batches are.
      for (int64_t r = 1; r < batch; ++r) mask[r].narrow(0, length - (r * length) / (batch + 1), (r * length) / (batch + 1)).zero_();
      in.set("attention_mask", mask);
    }
    if (feats) {
      const at::Tensor mean = model->feature_mean.detach().to(at::kCPU), std = model->feature_std.detach().to(at::kCPU);
      in.set("features", mean + std * at::randn({batch, mean.size(0)}, gen, at::TensorOptions(at::kFloat)));
    }
    return in;
  };
  g.reference = [model](const data::NamedTensors& inputs) mutable {
    model->eval();
    torch::NoGradGuard no_grad;
    const auto device = model->fusion->weight.device();
    auto get = [&](const char* name) { return inputs.contains(name) ? inputs.at(name).to(device) : at::Tensor(); };
    auto [va, logits] = model->forward(get("input_ids"), get("attention_mask"), get("features"));
    data::NamedTensors out;
    out.set("valence_arousal", va.to(at::kCPU, at::kFloat));
    out.set("quadrant", torch::softmax(logits.to(at::kFloat), -1).to(at::kCPU));
    return out;
  };
  g.parity_shapes = {{1, 16}, {3, 64}};
  if (tokens) {
    g.metadata[onnx::meta::kTokenizer] = tokenizer_json_;
    const auto tok = tokenizer::Tokenizer::load((fs::path(config_.data.prepared.str()) / "tokenizer.json").string());
    for (const char* name : {"PAD", "BOS", "EOS", "MASK"}) {
      std::string key = name;
      for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (tok.special_id(name) >= 0) g.metadata[onnx::meta::kSpecialTokenPrefix + key] = std::to_string(tok.special_id(name));
    }
  }
  g.metadata["kmidi.emotion.inputs"] = config_.data.inputs;
  if (feats) {
    g.metadata["kmidi.emotion.feature_layout_sha256"] = features::EmotionFeatureCache::layout_sha256();
    g.metadata["kmidi.emotion.feature_layout"] = features::emotion_feature_layout_json();  // docs/emotion_features.md
  }
  // Tokens are encoded from the normalised score too, so every input kind carries it.
  g.metadata[kNormaliseKey] = normalise_metadata(config_.data.normalise);
  g.registry_task = "emotion_embedding";
  g.registry_input_size = feats ? static_cast<int64_t>(features::kEmotionFeatureSize)
                                : std::min<int64_t>(config_.data.max_length, 128);
  g.registry_output_size = 2 + kQuadrants;
  std::vector<GraphExport> out{g};
  if (config_.export_.legacy_slot) out.push_back(legacy_graph());
  return out;
}

GraphExport EmotionTask::legacy_graph() {
  GraphExport g;
  g.suffix = "legacy";
  g.file_stem = "emotionrecognizer";
  g.description = "the engines' legacy emotionrecognizer slot: input [1, 128] features -> output [1, 64]";
  models::EmotionModel model = model_;
  g.emit = [model](onnx::ModelBuilder& b) mutable {
    model->eval();
    models::emit_emotion_legacy(b, *model);
  };
  g.sample_inputs = [model](int64_t batch, int64_t, uint64_t seed) {
    if (batch != 1) throw UsageError("the legacy emotionrecognizer graph is static at batch 1");
    at::Generator gen = at::detail::createCPUGenerator(seed);
    const at::Tensor mean = model->feature_mean.detach().to(at::kCPU), std = model->feature_std.detach().to(at::kCPU);
    data::NamedTensors in;
    in.set("input", mean + std * at::randn({1, mean.size(0)}, gen, at::TensorOptions(at::kFloat)));
    return in;
  };
  g.reference = [model](const data::NamedTensors& inputs) mutable {
    model->eval();
    torch::NoGradGuard no_grad;
    const auto device = model->fusion->weight.device();
    auto [va, logits] = model->forward(at::Tensor(), at::Tensor(), inputs.at("input").to(device));
    data::NamedTensors out;
    out.set("output", models::legacy_emotion_output(va.to(at::kCPU, at::kFloat)));
    return out;
  };
  // The graph is static: parity runs at its one shape, on three inputs (each run has its own seed).
  g.parity_shapes = {{1, 0}, {1, 0}, {1, 0}};
  g.metadata["kmidi.emotion.inputs"] = config_.data.inputs;
  g.metadata["kmidi.emotion.feature_layout_sha256"] = features::EmotionFeatureCache::layout_sha256();
  g.metadata["kmidi.emotion.feature_layout"] = features::emotion_feature_layout_json();
  g.metadata[kNormaliseKey] = normalise_metadata(config_.data.normalise);
  g.registry_task = "emotion_embedding";
  g.registry_input_size = models::kLegacyEmotionInput;
  g.registry_output_size = models::kLegacyEmotionOutput;
  return g;
}

}  // namespace kmidi::train
