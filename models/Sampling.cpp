#include "models/Sampling.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_set>

#include "datasets/tokenizer/Grammar.h"

namespace kmidi::models {

void SamplingOptions::validate() const {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument("sampling: " + message);
  };
  require(temperature > 0.0, "temperature must be > 0, got " + std::to_string(temperature));
  require(top_k >= 0, "top_k must be >= 0 (0 disables), got " + std::to_string(top_k));
  require(top_p > 0.0 && top_p <= 1.0, "top_p must be in (0, 1], got " + std::to_string(top_p));
  require(repetition_penalty >= 1.0, "repetition_penalty must be >= 1, got " + std::to_string(repetition_penalty));
  require(max_new_tokens > 0, "max_new_tokens must be positive");
  require(std::isfinite(guidance) && guidance >= 0.0,
          "guidance must be a finite number >= 0 (1: off), got " + std::to_string(guidance));
}

at::Tensor sampling_probabilities(const at::Tensor& logits, const std::vector<int64_t>& history,
                                  const SamplingOptions& options, const std::vector<uint8_t>* allowed) {
  at::Tensor scores = logits.to(torch::kFloat).flatten().clone();
  const int64_t vocab = scores.size(0);
  auto* data = scores.data_ptr<float>();
  if (options.repetition_penalty != 1.0) {
    std::unordered_set<int64_t> seen(history.begin(), history.end());
    const auto penalty = static_cast<float>(options.repetition_penalty);
    for (int64_t id : seen) {
      if (id < 0 || id >= vocab) continue;
      data[id] = data[id] > 0 ? data[id] / penalty : data[id] * penalty;
    }
  }
  constexpr float kNever = -std::numeric_limits<float>::infinity();
  for (int64_t id : options.banned_ids) {
    if (id >= 0 && id < vocab) data[id] = kNever;
  }
  if (allowed) {
    if (static_cast<int64_t>(allowed->size()) != vocab) {
      throw std::invalid_argument("sampling: the allowed mask has " + std::to_string(allowed->size()) +
                                  " entries for " + std::to_string(vocab) + " logits");
    }
    for (int64_t id = 0; id < vocab; ++id) {
      if (!(*allowed)[static_cast<size_t>(id)]) data[id] = kNever;
    }
  }
  if (!(scores.max().item<float>() > kNever)) {
    throw std::runtime_error("sampling: no token is left to sample (every allowed id is banned)");
  }
  scores = scores / options.temperature;
  if (options.top_k > 0 && options.top_k < vocab) {
    const at::Tensor kth = std::get<0>(scores.topk(options.top_k)).min();
    scores = scores.masked_fill(scores < kth, kNever);
  }
  at::Tensor probs = torch::softmax(scores, 0);
  if (options.top_p < 1.0) {
    auto [sorted, order] = probs.sort(/*dim=*/0, /*descending=*/true);
    const at::Tensor cumulative = sorted.cumsum(0);
    // Keep a token while the mass before it is below top_p (the first always stays).
    const at::Tensor drop_sorted = (cumulative - sorted) >= options.top_p;
    const at::Tensor drop = torch::zeros_like(drop_sorted).scatter(0, order, drop_sorted);
    probs = probs.masked_fill(drop, 0.0);
    probs = probs / probs.sum();
  }
  return probs;
}

GuidedLogits::GuidedLogits(MidiGenerator model, const at::Tensor& emotion, double guidance)
    : model_(std::move(model)), guidance_(guidance) {
  const auto options = torch::TensorOptions().dtype(torch::kFloat).device(model_->token_embedding->weight.device());
  const at::Tensor cond = emotion.to(options).reshape({1, -1});
  if (guidance_ == 1.0) emotion_rows_ = cond;
  else if (guidance_ == 0.0) emotion_rows_ = torch::zeros_like(cond);
  else emotion_rows_ = torch::cat({cond, torch::zeros_like(cond)}, 0);
}

at::Tensor GuidedLogits::next(const std::vector<int64_t>& ids) {
  const int64_t rows = emotion_rows_.size(0);
  const at::Tensor input = torch::tensor(ids, torch::TensorOptions().dtype(torch::kLong))
                               .view({1, -1})
                               .repeat({rows, 1})
                               .to(emotion_rows_.device());
  const at::Tensor last = model_->forward_cached(input, emotion_rows_, cache_).select(1, -1).to(torch::kFloat).cpu();
  if (rows == 1) return last[0];
  const at::Tensor cond = last[0], uncond = last[1];
  return uncond + guidance_ * (cond - uncond);
}

std::vector<int64_t> generate(MidiGenerator& model, const std::vector<int64_t>& prompt, const at::Tensor& emotion,
                              const SamplingOptions& options) {
  options.validate();
  if (prompt.empty()) throw std::invalid_argument("generate: the prompt must hold at least one token (e.g. BOS)");
  std::optional<tokenizer::GrammarCursor> cursor;
  if (options.grammar) {
    cursor.emplace(*options.grammar);
    for (size_t i = 0; i < prompt.size(); ++i) {
      const std::string state = cursor->state_name();
      if (prompt[i] < 0 || prompt[i] > INT32_MAX || !cursor->advance(static_cast<int32_t>(prompt[i]))) {
        throw std::invalid_argument("generate: prompt token " + std::to_string(i) + " (id " + std::to_string(prompt[i]) +
                                    ") breaks the tokenizer's grammar in state '" + state + "'");
      }
    }
  }
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const std::unordered_set<int64_t> stops(options.stop_ids.begin(), options.stop_ids.end());

  std::vector<int64_t> sequence = prompt;
  GuidedLogits logits_of(model, emotion, options.guidance);
  std::vector<uint8_t> allowed;
  std::vector<int64_t> step = prompt;
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    if (cursor && cursor->complete()) break;
    const at::Tensor logits = logits_of.next(step);
    if (cursor) cursor->allowed(allowed);
    const at::Tensor probs = sampling_probabilities(logits, sequence, options, cursor ? &allowed : nullptr);
    const int64_t next = torch::multinomial(probs, 1, /*replacement=*/false, gen).item<int64_t>();
    sequence.push_back(next);
    if (cursor) cursor->advance(static_cast<int32_t>(next));
    if (stops.count(next)) break;
    step.assign(1, next);
  }
  if (was_training) model->train();
  return sequence;
}

}  // namespace kmidi::models
