#include "models/Sampling.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <unordered_set>

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
}

at::Tensor sampling_probabilities(const at::Tensor& logits, const std::vector<int64_t>& history,
                                  const SamplingOptions& options) {
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
  for (int64_t id : options.banned_ids) {
    if (id >= 0 && id < vocab) data[id] = -std::numeric_limits<float>::infinity();
  }
  scores = scores / options.temperature;
  if (options.top_k > 0 && options.top_k < vocab) {
    const at::Tensor kth = std::get<0>(scores.topk(options.top_k)).min();
    scores = scores.masked_fill(scores < kth, -std::numeric_limits<float>::infinity());
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

std::vector<int64_t> generate(MidiGenerator& model, const std::vector<int64_t>& prompt, const at::Tensor& emotion,
                              const SamplingOptions& options) {
  options.validate();
  if (prompt.empty()) throw std::invalid_argument("generate: the prompt must hold at least one token (e.g. BOS)");
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const c10::Device device = model->token_embedding->weight.device();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const std::unordered_set<int64_t> stops(options.stop_ids.begin(), options.stop_ids.end());

  std::vector<int64_t> sequence = prompt;
  const at::Tensor cond = emotion.to(device, torch::kFloat).reshape({1, -1});
  KVCache cache;
  at::Tensor step_input =
      torch::tensor(prompt, torch::TensorOptions().dtype(torch::kLong)).view({1, -1}).to(device);
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    const at::Tensor logits = model->forward_cached(step_input, cond, cache);
    const at::Tensor probs = sampling_probabilities(logits[0][-1].cpu(), sequence, options);
    const int64_t next = torch::multinomial(probs, 1, /*replacement=*/false, gen).item<int64_t>();
    sequence.push_back(next);
    if (stops.count(next)) break;
    step_input = torch::full({1, 1}, next, torch::TensorOptions().dtype(torch::kLong).device(device));
  }
  if (was_training) model->train();
  return sequence;
}

}  // namespace kmidi::models
