#include "train/tasks/MidiGeneratorTask.h"

#include <torch/torch.h>

#include <cctype>
#include <cmath>
#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/TokenAugment.h"
#include "datasets/corpus/Prepare.h"
#include "datasets/corpus/PrepareConfig.h"
#include "datasets/shards/ShardReader.h"
#include "onnx/check/GeneratorExportCheck.h"
#include "onnx/check/TokenizerMetadata.h"
#include "onnx/Metadata.h"
#include "models/Sampling.h"
#include "models/MidiGeneratorOnnx.h"
#include "train/Checkpoint.h"
#include "train/Job.h"

namespace kmidi::train {
namespace fs = std::filesystem;
using config::Spec;

void GeneratorDataConfig::visit(config::Visitor& v) {
  // Another config and kmidi's own output: relative to this file, never to data_root.
  v.field("prepare", prepare,
          Spec("kmidi prepare config whose output.dir holds the shards; prepared on first use when missing"));
  v.field("dir", dir, Spec("prepared shards (<split>.h5 + tokenizer.json); default: prepare's output.dir"));
  v.field("max_length", max_length, Spec("tokens per training row; inference takes any length").min(2));
  v.field("windowing", windowing,
          Spec("training windows of long pieces: a random crop per epoch, or fixed windows")
              .one_of({"random_crop", "windows"}));
  v.list("mixture", mixture,
         Spec("several prepared corpora [{dir, weight, name}] instead of data.dir: training draws by weight"));
  v.field("mixture_draws_per_epoch", mixture_draws_per_epoch,
          Spec("data.mixture: training draws per epoch; 0 means the corpora's training items together").non_negative());
  v.field("preload", preload, Spec("read every token into memory at start-up (off: read by chunk, bounded memory)"));
  v.field("emotion_scale", emotion_scale,
          Spec("a labelled item's valence and arousal are the shard's (EMOPIA: quadrant signs) times this").positive());
  v.field("transpose", transpose,
          Spec("training only: every pitch of an item moves by semitones drawn from [lowest, highest] per "
               "(seed, epoch, item); [] off"));
  v.check(data::transpose_problem(transpose).empty(), "transpose", data::transpose_problem(transpose));
  v.section("batching", batching, Spec("training micro-batches by token budget instead of train.batch_size items"));
  v.check(batching.tokens_per_batch == 0 || batching.tokens_per_batch >= max_length, "batching",
          "tokens_per_batch " + std::to_string(batching.tokens_per_batch) + " is smaller than max_length " +
              std::to_string(max_length) + ": a full-length row would not fit");
  v.check(!prepare.str().empty() || !dir.str().empty() || !mixture.empty(), "dir",
          "set data.dir, data.prepare or data.mixture");
  v.check(mixture.empty() || (prepare.str().empty() && dir.str().empty()), "mixture",
          "data.mixture replaces data.dir and data.prepare; set only one of them");
  v.check(mixture.empty() || batching.tokens_per_batch == 0, "mixture",
          "data.batching.tokens_per_batch does not combine with data.mixture (an epoch's draws change its packing); "
          "use train.batch_size");
  v.check(data::mixture_name_clash(mixture).empty(), "mixture", data::mixture_name_clash(mixture));
}

void GeneratorModelConfig::visit(config::Visitor& v) {
  v.field("d_model", d_model, Spec("width").positive());
  v.field("n_layers", n_layers, Spec("decoder blocks").positive());
  v.field("n_heads", n_heads, Spec("attention heads; d_model / n_heads must be even").positive());
  v.field("d_ff", d_ff, Spec("MLP hidden width").positive());
  v.field("dropout", dropout, Spec("residual and attention dropout").min(0.0).less_than(1.0));
  v.field("conditioning", conditioning,
          Spec("how the 64-d emotion vector enters").one_of({"prefix", "cross_attention"}));
  v.field("condition_tokens", condition_tokens, Spec("prefix length per layer, or cross-attention memory size").positive());
  v.field("rope_base", rope_base, Spec("rotary embedding base").positive());
  v.field("tie_embeddings", tie_embeddings, Spec("the output layer shares the token embedding"));
  v.field("condition_dropout", condition_dropout,
          Spec("share of labelled training items shown with the neutral emotion vector (zero = any emotion)")
              .min(0.0)
              .less_than(1.0));
  stated.visit(v);  // model.vocab_size, model.pad_id, ... inline
  v.check(n_heads <= 0 || (d_model % n_heads == 0 && (d_model / n_heads) % 2 == 0), "n_heads",
          "d_model / n_heads must be a whole, even head size (rotary embeddings rotate pairs)");
}

models::MidiGeneratorOptions GeneratorModelConfig::options(int64_t vocab_size) const {
  models::MidiGeneratorOptions o;
  o.vocab_size = vocab_size;
  o.d_model = d_model;
  o.n_layers = n_layers;
  o.n_heads = n_heads;
  o.d_ff = d_ff;
  o.dropout = dropout;
  o.conditioning = models::parse_conditioning(conditioning);
  o.condition_tokens = condition_tokens;
  o.rope_base = rope_base;
  o.tie_embeddings = tie_embeddings;
  o.validate();
  return o;
}

void GeneratorLossConfig::visit(config::Visitor& v) {
  v.field("label_smoothing", label_smoothing,
          Spec("cross-entropy label smoothing; PAD (the tokenizer's) is always ignored").min(0.0).less_than(1.0));
}

void MidiGeneratorJobConfig::visit(config::Visitor& v) {
  v.section("data", data);
  v.section("model", model);
  v.section("loss", loss);
}

std::string resolve_generator_data(const GeneratorDataConfig& data, bool may_prepare) {
  if (!data.dir.str().empty()) return data.dir.str();
  const corpus::PrepareConfig prepare = corpus::load_prepare_config(data.prepare.str());
  const std::string dir = prepare.output.dir.str();
  if (fs::exists(fs::path(dir) / "train.h5") && fs::exists(fs::path(dir) / "tokenizer.json")) return dir;
  if (!may_prepare) {
    throw DataError(dir + ": no prepared shards; run `kmidi prepare --config " + data.prepare.str() +
                    "` before a multi-process job");
  }
  spdlog::info("{}: no prepared shards yet; preparing them with {}", dir, data.prepare.str());
  corpus::run_prepare(prepare);
  return dir;
}

namespace {

data::TokenDatasetConfig split_config(const GeneratorDataConfig& data, const std::string& dir, Split split,
                                      uint64_t seed) {
  data::TokenDatasetConfig c;
  c.dir = dir;
  c.max_length = data.max_length;
  // Evaluation reads every token exactly once, the same way every time.
  c.windowing = split == Split::kTrain ? data.windowing : "windows";
  c.seed = static_cast<int64_t>(seed);
  c.preload = data.preload;
  c.emotion_scale = data.emotion_scale;
  if (split == Split::kTrain) c.tokens_per_batch = data.batching.tokens_per_batch;
  if (split == Split::kTrain) c.transpose = data.transpose;  // evaluation sees the pieces as written
  return c;
}

/// Add-one smoothed unigram log-probabilities of the train splits' target
/// tokens (of every corpus of a mixture, unweighted). Windows make every
/// token of a piece but its first a target exactly once, so the shards are
/// counted directly, a block of tokens at a time (memory does not grow with
/// the corpus).
at::Tensor unigram_log_probs(const std::vector<std::string>& dirs, int64_t vocab_size, int64_t pad) {
  constexpr size_t kBlock = size_t{1} << 20;  // tokens per bincount
  at::Tensor counts = torch::ones({vocab_size}, torch::kDouble);
  std::vector<int32_t> block;
  auto flush = [&] {
    const at::Tensor ids = torch::from_blob(block.data(), {static_cast<int64_t>(block.size())}, torch::kInt).to(torch::kLong);
    counts += torch::bincount(ids.masked_select(ids != pad), {}, vocab_size).to(torch::kDouble);
    block.clear();
  };
  for (const std::string& dir : dirs) {
    shards::ShardReaderOptions options;
    options.metadata_in_memory = false;
    const shards::ShardReader shard((fs::path(dir) / shards::shard_file_name("train")).string(), options);
    for (int64_t p = 0; p < shard.size(); ++p) {
      for (int64_t first = 1; first < shard.length(p);) {
        const int64_t n = std::min<int64_t>(shard.length(p) - first, static_cast<int64_t>(kBlock - block.size()));
        const size_t at = block.size();
        block.resize(at + static_cast<size_t>(n));
        shard.read(p, first, n, block.data() + at);
        first += n;
        if (block.size() == kBlock) flush();
      }
    }
  }
  if (!block.empty()) flush();
  counts[pad] = 0;  // never a target
  return (counts / counts.sum()).log().to(torch::kFloat);
}

/// A mixture entry's folder, checked to be a prepared corpus before anything opens it.
std::string mixture_dir(const GeneratorDataConfig& data, size_t index) {
  const std::string dir = data.mixture[index].dir.str();
  for (const char* file : {"train.h5", "tokenizer.json"}) {
    if (!fs::exists(fs::path(dir) / file)) {
      throw DataError("data.mixture[" + std::to_string(index) + "].dir: " + dir + " is not a prepared corpus (no " +
                      file + "); run kmidi prepare for it first");
    }
  }
  return dir;
}

}  // namespace

MidiGeneratorTask::MidiGeneratorTask(const MidiGeneratorJobConfig& config, const TaskContext& context)
    : config_(config) {
  const bool mixture = !config.data.mixture.empty();
  std::vector<std::string> dirs;
  if (mixture) {
    for (size_t i = 0; i < config.data.mixture.size(); ++i) {
      dirs.push_back(mixture_dir(config.data, i));
      corpus_names_.push_back(config.data.mixture[i].effective_name());
    }
  } else {
    dirs.push_back(resolve_generator_data(config.data, context.world_size == 1));
  }
  data_dir_ = dirs.front();
  const std::string tokenizer_path = (fs::path(data_dir_) / "tokenizer.json").string();
  tokenizer_json_ = files::read_all(tokenizer_path);
  tokenizer_ = std::make_shared<tokenizer::Tokenizer>(tokenizer::Tokenizer::from_json(tokenizer_json_, tokenizer_path));
  tokenizer::check_stated_ids(*tokenizer_, tokenizer_path, config.model.stated, "model");

  for (Split split : {Split::kTrain, Split::kValidation, Split::kTest}) {
    std::vector<data::TokenMixtureDataset::Corpus> corpora;
    for (size_t i = 0; i < dirs.size(); ++i) {
      const fs::path shard = fs::path(dirs[i]) / (std::string(split_name(split)) + ".h5");
      if (split != Split::kTrain && !fs::exists(shard)) continue;
      data::TokenDatasetConfig c = split_config(config.data, dirs[i], split, context.seed);
      if (split == Split::kTrain) c.condition_dropout = config.model.condition_dropout;  // evaluation sees the labels
      auto data = std::make_shared<data::TokenShardDataset>(c, split_name(split));
      if (!mixture) {
        datasets_[split] = data;
        break;
      }
      corpora.push_back({corpus_names_[i], dirs[i], config.data.mixture[i].weight, data});
    }
    if (corpora.empty()) continue;
    // Evaluation reads every corpus's own split; the per-corpus metrics tell them apart.
    auto merged = std::make_shared<data::TokenMixtureDataset>(
        std::move(corpora), split == Split::kTrain ? data::MixtureRole::kTrain : data::MixtureRole::kEvaluate,
        context.seed, config.data.mixture_draws_per_epoch);
    for (size_t c = 0; c < merged->corpora(); ++c) {
      spdlog::info("data.mixture {}: {} ({}): {} {} per {}", split_name(split), merged->corpus(c).name,
                   merged->corpus(c).dir, merged->items_per_corpus()[c],
                   split == Split::kTrain ? "draws" : "items", split == Split::kTrain ? "epoch" : "evaluation");
    }
    datasets_[split] = merged;
  }
  unigram_log_probs_ = unigram_log_probs(dirs, tokenizer_->vocab_size(), tokenizer_->pad_id());
  model_ = models::MidiGenerator(config.model.options(tokenizer_->vocab_size()));
}

torch::nn::Module& MidiGeneratorTask::model() { return *model_; }

std::shared_ptr<const data::Dataset> MidiGeneratorTask::dataset(Split split) {
  const auto it = datasets_.find(split);
  return it == datasets_.end() ? nullptr : it->second;
}

at::Tensor MidiGeneratorTask::emotion_input(const data::Batch& batch) const {
  if (batch.inputs.contains("emotion")) return batch.inputs.at("emotion");
  // Unlabelled corpora condition on the neutral vector, as generation does by default.
  const at::Tensor& ids = batch.inputs.at("input_ids");
  return torch::zeros({ids.size(0), model_->options().emotion_dim}, ids.options().dtype(torch::kFloat));
}

ForwardOutput MidiGeneratorTask::forward(const data::Batch& batch, bool training) {
  (void)training;
  const at::Tensor& ids = batch.inputs.at("input_ids");
  const at::Tensor logits = model_->forward(ids, emotion_input(batch), batch.inputs.at("attention_mask"));
  const int64_t vocab = logits.size(-1);
  const at::Tensor log_probs = torch::log_softmax(logits.reshape({-1, vocab}).to(torch::kFloat), -1);
  const at::Tensor labels = batch.targets.at("labels").reshape({-1});
  const at::Tensor valid = labels != tokenizer_->pad_id();
  const at::Tensor nll = -log_probs.gather(1, labels.unsqueeze(1)).squeeze(1);
  // Label smoothing as torch's cross_entropy defines it: (1 - e) * nll + e * mean over the vocabulary of -log p.
  const double e = config_.loss.label_smoothing;
  const at::Tensor per_token = e > 0 ? (1.0 - e) * nll - e * log_probs.mean(-1) : nll;
  ForwardOutput out;
  out.loss_sum = per_token.masked_select(valid).sum();
  const at::Tensor valid_labels = labels.masked_select(valid);
  out.sums.emplace_back("nll_sum", nll.detach().masked_select(valid).sum());
  out.sums.emplace_back("correct", (log_probs.detach().argmax(-1).masked_select(valid) == valid_labels).sum().to(torch::kDouble));
  out.sums.emplace_back("unigram_nll_sum",
                        -unigram_log_probs_.to(labels.device()).index_select(0, valid_labels).sum().to(torch::kDouble));
  if (!corpus_names_.empty()) add_corpus_sums(batch, nll, valid, log_probs.detach().argmax(-1) == labels, out.sums);
  return out;
}

void MidiGeneratorTask::add_corpus_sums(const data::Batch& batch, const at::Tensor& nll, const at::Tensor& valid,
                                        const at::Tensor& correct, MetricSums& sums) const {
  // Every batch returns every corpus's sums (zeros where absent): ranks must agree on the names.
  const at::Tensor corpus = batch.inputs.at("corpus");
  const auto k = static_cast<int64_t>(corpus_names_.size());
  const int64_t rows = corpus.size(0);
  auto per_corpus = [&](const at::Tensor& per_token) {
    const at::Tensor per_row = per_token.to(torch::kDouble).reshape({rows, -1}).sum(1);
    return torch::zeros({k}, per_row.options()).index_add_(0, corpus, per_row);
  };
  const at::Tensor masked = valid.to(torch::kDouble);
  const at::Tensor nll_sums = per_corpus(nll.detach().to(torch::kDouble) * masked);
  const at::Tensor units = per_corpus(masked);
  const at::Tensor hits = per_corpus(correct.to(torch::kDouble) * masked);
  const at::Tensor draws = torch::zeros({k}, masked.options()).index_add_(0, corpus, torch::ones({rows}, masked.options()));
  for (int64_t c = 0; c < k; ++c) {
    const std::string& name = corpus_names_[static_cast<size_t>(c)];
    sums.emplace_back("nll_sum." + name, nll_sums[c]);
    sums.emplace_back("units." + name, units[c]);
    sums.emplace_back("correct." + name, hits[c]);
    sums.emplace_back("rows." + name, draws[c]);
  }
}

MetricValues MidiGeneratorTask::finalize(const MetricValues& sums, Split split) const {
  const double units = std::max(sums.at("units"), 1.0);
  MetricValues m;
  m["loss"] = sums.at("loss_sum") / units;
  m["nll"] = sums.at("nll_sum") / units;
  m["perplexity"] = std::exp(m["nll"]);
  m["accuracy"] = sums.at("correct") / units;
  m["unigram_perplexity"] = std::exp(sums.at("unigram_nll_sum") / units);
  for (const std::string& name : corpus_names_) {
    const double corpus_units = sums.at("units." + name);
    // Training: rows drawn from the corpus since the last log line; evaluation: rows evaluated.
    m[(split == Split::kTrain ? "draws." : "rows.") + name] = sums.at("rows." + name);
    if (corpus_units <= 0) continue;  // nothing of this corpus in the window
    m["nll." + name] = sums.at("nll_sum." + name) / corpus_units;
    m["perplexity." + name] = std::exp(m["nll." + name]);
    m["accuracy." + name] = sums.at("correct." + name) / corpus_units;
  }
  return m;
}

data::NamedTensors MidiGeneratorTask::predict(const data::Batch& batch) {
  const at::Tensor& ids = batch.inputs.at("input_ids");
  const at::Tensor& mask = batch.inputs.at("attention_mask");
  const at::Tensor logits = model_->forward(ids, emotion_input(batch), mask).to(torch::kFloat);
  using torch::indexing::Slice;
  const at::Tensor log_probs = torch::log_softmax(logits.index({Slice(), Slice(0, -1)}), -1);
  const at::Tensor next = ids.index({Slice(), Slice(1, torch::indexing::None)});
  const at::Tensor counted = mask.index({Slice(), Slice(1, torch::indexing::None)}).to(torch::kFloat);
  const at::Tensor token_ll = log_probs.gather(2, next.unsqueeze(2)).squeeze(2) * counted;
  data::NamedTensors out;
  out.set("log_likelihood", token_ll.sum(1));
  out.set("tokens", counted.sum(1).to(torch::kLong));
  return out;
}

std::map<std::string, std::string> MidiGeneratorTask::artifacts() const {
  return {{"tokenizer.json", tokenizer_json_}};
}

std::vector<GraphExport> MidiGeneratorTask::graphs() {
  const std::map<std::string, std::string> metadata = onnx::tokenizer_metadata(*tokenizer_);
  const int64_t vocab = tokenizer_->vocab_size();
  const int64_t emotion_dim = model_->options().emotion_dim;
  models::MidiGenerator model = model_;

  auto random_inputs = [vocab, emotion_dim](int64_t batch, int64_t length, uint64_t seed) {
    auto gen = at::detail::createCPUGenerator(seed);
    data::NamedTensors in;
    in.set("input_ids", at::randint(0, vocab, {batch, length}, gen, torch::kLong));
    in.set("emotion", at::rand({batch, emotion_dim}, gen) * 2 - 1);
    return in;
  };

  GraphExport full;
  full.suffix = "";
  full.description = "logits of every position of a whole sequence";
  full.emit = [model](onnx::ModelBuilder& b) mutable { models::emit_midi_generator(b, *model, false); };
  full.sample_inputs = [random_inputs](int64_t batch, int64_t length, uint64_t seed) {
    return random_inputs(batch, std::max<int64_t>(length, 1), seed);
  };
  full.reference = [model](const data::NamedTensors& in) mutable {
    torch::NoGradGuard no_grad;
    model->eval();
    data::NamedTensors out;
    out.set("logits", model->forward(in.at("input_ids"), in.at("emotion")));
    return out;
  };
  full.parity_shapes = {{1, 1}, {2, 17}, {1, 256}};
  full.metadata = metadata;
  // Across both files: the incremental graph reproduces the full graph token
  // by token on a real piece, and generated ids decode with the file alone.
  {
    onnx::GeneratorCheckInputs check;
    const auto source = datasets_.count(Split::kValidation) ? datasets_.at(Split::kValidation) : datasets_.at(Split::kTrain);
    const at::Tensor piece = source->get_batch({0}).inputs.at("input_ids");
    check.inputs.set("input_ids", piece.slice(1, 0, std::min<int64_t>(24, piece.size(1))).contiguous());
    check.inputs.set("emotion", torch::zeros({1, emotion_dim}));
    models::SamplingOptions sampling;
    sampling.max_new_tokens = 128;
    sampling.seed = 1;
    sampling.stop_ids = {tokenizer_->eos_id()};
    sampling.banned_ids = {tokenizer_->pad_id(), tokenizer_->bos_id(), tokenizer_->mask_id()};
    {
      torch::NoGradGuard no_grad;
      model->eval();
      for (int64_t id : models::generate(model, {tokenizer_->bos_id()}, torch::zeros({emotion_dim}), sampling)) {
        check.decode_ids.push_back(static_cast<int32_t>(id));
      }
    }
    full.extra_check = onnx::generator_extra_check(*tokenizer_, check);
  }
  full.registry_task = "melody_generation";
  full.registry_input_size = emotion_dim;  // the conditioning vector; tokens are the sequence
  full.registry_output_size = tokenizer_->vocab_size();  // logits per position: engines size buffers from it

  GraphExport incremental = full;
  incremental.extra_check = nullptr;  // one cross-file check per export
  incremental.suffix = "incremental";
  incremental.description = "logits of new tokens after a cached past (past_* in, present_* out)";
  incremental.emit = [model](onnx::ModelBuilder& b) mutable { models::emit_midi_generator(b, *model, true); };
  // `length` is the cached past; one new token per row follows it.
  incremental.sample_inputs = [model, random_inputs](int64_t batch, int64_t length, uint64_t seed) mutable {
    torch::NoGradGuard no_grad;
    model->eval();
    data::NamedTensors prefix = random_inputs(batch, length + 1, seed);
    using torch::indexing::Slice;
    const at::Tensor ids = prefix.at("input_ids");
    models::KVCache cache;
    const int64_t layers = model->options().n_layers, heads = model->options().n_heads;
    if (length > 0) {
      model->forward_cached(ids.index({Slice(), Slice(0, length)}), prefix.at("emotion"), cache);
    } else {
      for (int64_t l = 0; l < layers; ++l) {
        cache.keys.push_back(torch::zeros({batch, heads, 0, model->options().head_dim()}));
        cache.values.push_back(torch::zeros({batch, heads, 0, model->options().head_dim()}));
      }
    }
    data::NamedTensors in;
    in.set("input_ids", ids.index({Slice(), Slice(length, length + 1)}).contiguous());
    in.set("emotion", prefix.at("emotion"));
    for (int64_t l = 0; l < layers; ++l) {
      in.set(models::past_key_name(l), cache.keys[static_cast<size_t>(l)].contiguous());
      in.set(models::past_value_name(l), cache.values[static_cast<size_t>(l)].contiguous());
    }
    return in;
  };
  incremental.reference = [model](const data::NamedTensors& in) mutable {
    torch::NoGradGuard no_grad;
    model->eval();
    models::KVCache cache;
    const int64_t layers = model->options().n_layers;
    for (int64_t l = 0; l < layers; ++l) {
      cache.keys.push_back(in.at(models::past_key_name(l)).clone());
      cache.values.push_back(in.at(models::past_value_name(l)).clone());
    }
    if (cache.keys[0].size(2) == 0) cache = models::KVCache{};
    data::NamedTensors out;
    out.set("logits", model->forward_cached(in.at("input_ids"), in.at("emotion"), cache));
    for (int64_t l = 0; l < layers; ++l) {
      out.set(models::present_key_name(l), cache.keys[static_cast<size_t>(l)]);
      out.set(models::present_value_name(l), cache.values[static_cast<size_t>(l)]);
    }
    return out;
  };
  incremental.parity_shapes = {{1, 0}, {1, 15}, {2, 40}};
  return {full, incremental};
}

LoadedGenerator load_generator_checkpoint(const std::string& checkpoint_path, bool use_ema) {
  CheckpointFile file(checkpoint_path);
  const std::string origin = checkpoint_path + ": config.yaml";
  config::Document doc = config::Document::load_string(std::string(file.bytes(checkpoint_section::kConfig)), origin,
                                                       fs::current_path().string());
  const auto task = doc.top_level_string("task");
  if (!task || *task != "midi_generator") {
    throw UsageError(checkpoint_path + ": not a midi_generator checkpoint (task: " + (task ? *task : "none") + ")");
  }
  JobConfig job;
  job.task_config = std::make_unique<MidiGeneratorJobConfig>();
  doc.read_into(job);
  const auto& config = static_cast<const MidiGeneratorJobConfig&>(*job.task_config);

  const auto artifacts = file.artifacts();
  const auto tok = artifacts.find("tokenizer.json");
  if (tok == artifacts.end()) throw DataError(checkpoint_path + ": no tokenizer.json inside the checkpoint");
  LoadedGenerator loaded;
  loaded.tokenizer = std::make_shared<tokenizer::Tokenizer>(
      tokenizer::Tokenizer::from_json(tok->second, checkpoint_path + ": tokenizer.json"));
  tokenizer::check_stated_ids(*loaded.tokenizer, checkpoint_path + ": tokenizer.json", config.model.stated, "model");
  loaded.model = models::MidiGenerator(config.model.options(loaded.tokenizer->vocab_size()));

  NamedTensorList target;
  for (const auto& item : loaded.model->named_parameters(true)) target.emplace_back(item.key(), item.value());
  for (const auto& item : loaded.model->named_buffers(true)) target.emplace_back(item.key(), item.value());
  load_named_tensors(file.tensors(checkpoint_section::kModel), target, checkpoint_path + ": model");
  if (use_ema && file.has(checkpoint_section::kEma)) {
    NamedTensorList params;
    for (const auto& item : loaded.model->named_parameters(true)) params.emplace_back(item.key(), item.value());
    load_named_tensors(file.tensors(checkpoint_section::kEma), params, checkpoint_path + ": ema");
  }
  const auto meta = nlohmann::json::parse(file.bytes(checkpoint_section::kMeta), nullptr, false);
  if (meta.is_object()) loaded.step = meta.value("step", int64_t{0});
  loaded.model->eval();
  return loaded;
}

}  // namespace kmidi::train
