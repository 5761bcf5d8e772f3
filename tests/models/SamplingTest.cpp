#include "models/Sampling.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "datasets/tokenizer/Tokenizer.h"
#include "tests/support/TestSupport.h"

namespace kmidi::models {
namespace {

/// An untrained generator whose matrices are drawn wide (N(0, 0.3)), so that
/// its distributions are peaked and the emotion vector moves them: a random
/// model, the hardest case for a grammar mask.
MidiGenerator random_model(int64_t vocab_size, Conditioning conditioning, uint64_t seed) {
  torch::manual_seed(seed);
  MidiGeneratorOptions mo;
  mo.vocab_size = vocab_size;
  mo.d_model = 32;
  mo.n_layers = 2;
  mo.n_heads = 2;
  mo.d_ff = 64;
  mo.dropout = 0.0;
  mo.conditioning = conditioning;
  mo.condition_tokens = 2;
  MidiGenerator model(mo);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) {
    if (p.dim() >= 2) p.normal_(0.0, 0.3);
  }
  model->eval();
  return model;
}

/// The piano tokenizer of configs/prepare_pop909_sample.yaml, and one with
/// every kind of token (drums, time signatures, a Program before each note).
std::vector<tokenizer::Tokenizer> tokenizers() {
  tokenizer::TokenizerConfig piano;
  piano.drums = false;
  piano.time_signatures = false;
  piano.program_mode = "none";
  tokenizer::TokenizerConfig full;
  full.time_signature_fallback = "4/4";
  return {tokenizer::Tokenizer(piano), tokenizer::Tokenizer(full)};
}

/// kmidi generate's options for `tok`: stop at EOS, every other special banned.
SamplingOptions piece_options(const tokenizer::Tokenizer& tok, bool with_grammar) {
  SamplingOptions o;
  o.max_new_tokens = 300;
  o.stop_ids = {tok.eos_id()};
  o.banned_ids = {tok.pad_id(), tok.bos_id(), tok.mask_id()};
  if (with_grammar) o.grammar = std::make_shared<tokenizer::Grammar>(tok.grammar());
  return o;
}

TEST(Sampling, ProbabilitiesFollowHandComputation) {
  // logits [2, 1, 0, -1, -3]; token 0 and 3 already played; penalty 2:
  // 2 → 1 (positive: divided), -1 → -2 (negative: multiplied).
  SamplingOptions o;
  o.temperature = 1.0;
  o.top_k = 0;
  o.top_p = 1.0;
  o.repetition_penalty = 2.0;
  const auto probs = sampling_probabilities(torch::tensor({2.0f, 1.0f, 0.0f, -1.0f, -3.0f}), {0, 3, 3}, o);
  const std::vector<double> logits = {1.0, 1.0, 0.0, -2.0, -3.0};
  double z = 0;
  for (double l : logits) z += std::exp(l);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(probs[i].item<double>(), std::exp(logits[i]) / z, 1e-6);
}

TEST(Sampling, TopKTopPAndBannedIds) {
  SamplingOptions o;
  o.temperature = 0.5;
  o.top_k = 3;
  o.top_p = 1.0;
  o.repetition_penalty = 1.0;
  o.banned_ids = {0};
  // After banning id 0 the top 3 are ids 1, 2, 3; temperature 0.5 doubles logits.
  const auto probs = sampling_probabilities(torch::tensor({9.0f, 3.0f, 2.0f, 1.0f, 0.5f}), {}, o);
  const double z = std::exp(6.0) + std::exp(4.0) + std::exp(2.0);
  EXPECT_EQ(probs[0].item<double>(), 0.0);
  EXPECT_NEAR(probs[1].item<double>(), std::exp(6.0) / z, 1e-6);
  EXPECT_NEAR(probs[3].item<double>(), std::exp(2.0) / z, 1e-6);
  EXPECT_EQ(probs[4].item<double>(), 0.0);

  // Nucleus 0.7 over [0.5, 0.3, 0.2]: 0.5 alone is below 0.7, so ids 0 and 1 stay.
  o = SamplingOptions{};
  o.temperature = 1.0;
  o.top_k = 0;
  o.repetition_penalty = 1.0;
  o.top_p = 0.7;
  const auto nucleus = sampling_probabilities(torch::log(torch::tensor({0.2f, 0.5f, 0.3f})), {}, o);
  EXPECT_NEAR(nucleus[1].item<double>(), 0.5 / 0.8, 1e-6);
  EXPECT_NEAR(nucleus[2].item<double>(), 0.3 / 0.8, 1e-6);
  EXPECT_EQ(nucleus[0].item<double>(), 0.0);
}

TEST(Sampling, GenerateIsSeededAndStops) {
  torch::manual_seed(3);
  MidiGeneratorOptions mo;
  mo.vocab_size = 50;
  mo.d_model = 16;
  mo.n_layers = 1;
  mo.n_heads = 2;
  mo.d_ff = 32;
  mo.dropout = 0.0;
  MidiGenerator model(mo);
  SamplingOptions o;
  o.max_new_tokens = 40;
  o.seed = 11;
  o.banned_ids = {0};
  const auto emotion = torch::zeros({64});
  const auto a = generate(model, {1}, emotion, o);
  const auto b = generate(model, {1}, emotion, o);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 41u);
  EXPECT_EQ(a[0], 1);
  for (size_t i = 1; i < a.size(); ++i) EXPECT_NE(a[i], 0);
  o.seed = 12;
  EXPECT_NE(generate(model, {1}, emotion, o), a);
  // Stop on the first sampled token whatever it is: stop ids = every id.
  for (int64_t i = 0; i < 50; ++i) o.stop_ids.push_back(i);
  EXPECT_EQ(generate(model, {1, 2}, emotion, o).size(), 3u);
}

TEST(Sampling, GrammarMaskedPiecesOfARandomModelDecodeWithoutSkippedTokens) {
  for (const tokenizer::Tokenizer& tok : tokenizers()) {
    SCOPED_TRACE(tok.vocab_size());
    MidiGenerator model = random_model(tok.vocab_size(), Conditioning::kPrefix, 5);
    const at::Tensor emotion = torch::tensor({0.8f, -0.6f, 1.0f});
    const at::Tensor emotion64 = torch::cat({emotion, torch::zeros({61})});
    std::vector<std::vector<int32_t>> pieces;
    int64_t unmasked_skipped = 0, notes = 0, ended = 0;
    for (uint64_t seed = 1; seed <= 24; ++seed) {
      SamplingOptions o = piece_options(tok, true);
      o.seed = seed;
      const auto ids = generate(model, {tok.bos_id()}, emotion64, o);
      pieces.emplace_back(ids.begin(), ids.end());
      tokenizer::DecodeStats stats;
      tok.decode(pieces.back(), &stats);
      EXPECT_EQ(stats.invalid, 0) << "seed " << seed << ": " << tok.describe(pieces.back().data(), pieces.back().size());
      notes += stats.notes;
      if (ids.back() == tok.eos_id()) {
        ++ended;
        EXPECT_EQ(stats.incomplete_notes, 0) << "seed " << seed;
      } else {
        EXPECT_EQ(ids.size(), 301u);
        EXPECT_LE(stats.incomplete_notes, 1);  // cut by max_new_tokens
      }
      // The same model without the mask: today's sampling.
      o.grammar = nullptr;
      const auto free = generate(model, {tok.bos_id()}, emotion64, o);
      tok.decode(std::vector<int32_t>(free.begin(), free.end()), &stats);
      unmasked_skipped += stats.invalid;
    }
    EXPECT_GT(notes, 300);
    EXPECT_GT(unmasked_skipped, 1000) << "the unmasked model should break the grammar often";
    // The grammar in tokenizer.json, applied by an independent reader, accepts them all.
    const std::string dir = test::scratch_dir("sampling_grammar_" + std::to_string(tok.vocab_size()));
    tok.save(dir + "/tokenizer.json");
    {
      std::ofstream f(dir + "/pieces.jsonl");
      for (const auto& ids : pieces) f << nlohmann::json(ids).dump() << "\n";
    }
    const auto r = test::run({test::python(), test::source_path("tests/reference/grammar_check.py"),
                              dir + "/tokenizer.json", dir + "/pieces.jsonl"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::istringstream lines(r.output);
    size_t checked = 0, complete = 0;
    for (std::string line; std::getline(lines, line); ++checked) {
      const auto verdict = nlohmann::json::parse(line);
      EXPECT_TRUE(verdict.at("accepted").get<bool>()) << "piece " << checked << " at " << verdict.at("rejected_at");
      complete += verdict.at("complete").get<bool>();
    }
    EXPECT_EQ(checked, pieces.size());
    EXPECT_EQ(complete, static_cast<size_t>(ended));
  }
}

TEST(Sampling, PromptsThatBreakTheGrammarAreRefused) {
  const tokenizer::Tokenizer tok = tokenizers()[0];
  MidiGenerator model = random_model(tok.vocab_size(), Conditioning::kPrefix, 5);
  const int32_t velocity = tok.vocab().range(tokenizer::TokenKind::kVelocity).first;
  try {
    generate(model, {tok.bos_id(), velocity}, torch::zeros({64}), piece_options(tok, true));
    ADD_FAILURE() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("prompt token 1 (id " + std::to_string(velocity) +
                                         ") breaks the tokenizer's grammar in state 'piece'"),
              std::string::npos)
        << e.what();
  }
  // Banning every id the grammar allows leaves nothing to sample.
  SamplingOptions o = piece_options(tok, true);
  o.banned_ids.push_back(tok.vocab().range(tokenizer::TokenKind::kBar).first);
  o.banned_ids.push_back(tok.eos_id());
  EXPECT_THROW(generate(model, {tok.bos_id()}, torch::zeros({64}), o), std::runtime_error);
}

TEST(Sampling, GuidanceOneIsPlainSamplingAndZeroIsTheNeutralVector) {
  const tokenizer::Tokenizer tok = tokenizers()[0];
  MidiGenerator model = random_model(tok.vocab_size(), Conditioning::kPrefix, 8);
  const at::Tensor emotion = torch::cat({torch::tensor({0.9f, 0.9f, 1.0f}), torch::zeros({61})});
  SamplingOptions o = piece_options(tok, true);
  o.max_new_tokens = 120;
  o.banned_ids.push_back(tok.eos_id());  // pieces run their full length
  for (uint64_t seed : {3, 4, 5}) {
    o.seed = seed;
    o.guidance = 1.0;
    const auto plain = generate(model, {tok.bos_id()}, emotion, o);
    const auto neutral = generate(model, {tok.bos_id()}, torch::zeros({64}), o);
    ASSERT_NE(plain, neutral) << "the emotion should change this model's piece (seed " << seed << ")";
    o.guidance = 0.0;
    EXPECT_EQ(generate(model, {tok.bos_id()}, emotion, o), neutral) << seed;
    o.guidance = 3.0;
    const auto sharpened = generate(model, {tok.bos_id()}, emotion, o);
    EXPECT_NE(sharpened, plain) << seed;
    EXPECT_NE(sharpened, neutral) << seed;
  }
}

TEST(Sampling, GuidedLogitsAreNeutralPlusScaleTimesTheDifferenceOfTwoForwards) {
  for (Conditioning conditioning : {Conditioning::kPrefix, Conditioning::kCrossAttention}) {
    SCOPED_TRACE(to_string(conditioning));
    MidiGenerator model = random_model(60, conditioning, 13);
    const at::Tensor emotion = torch::cat({torch::tensor({-0.7f, 0.4f}), torch::zeros({62})});
    torch::NoGradGuard no_grad;
    for (double g : {1.5, 3.0, 0.5}) {
      GuidedLogits guided(model, emotion, g);
      std::vector<int64_t> seen = {1, 17, 23, 5};
      std::vector<at::Tensor> steps = {guided.next(seen)};
      for (int64_t id : {31, 8, 44}) {
        seen.push_back(id);
        steps.push_back(guided.next({id}));  // cached: one token per row
      }
      // By hand: two full forwards without a cache, one per emotion.
      for (size_t s = 0; s < steps.size(); ++s) {
        const int64_t length = static_cast<int64_t>(seen.size() - steps.size() + 1 + s);
        const at::Tensor ids = torch::tensor(std::vector<int64_t>(seen.begin(), seen.begin() + length)).view({1, -1});
        const at::Tensor cond = model->forward(ids, emotion.view({1, -1}))[0][-1];
        const at::Tensor uncond = model->forward(ids, torch::zeros({1, 64}))[0][-1];
        const at::Tensor expected = uncond + g * (cond - uncond);
        EXPECT_LT((steps[s] - expected).abs().max().item<double>(), 1e-4) << "guidance " << g << " step " << s;
        EXPECT_GT((expected - cond).abs().max().item<double>(), 1e-2) << "guidance should move the logits";
      }
    }
  }
}

TEST(Sampling, InvalidOptions) {
  SamplingOptions o;
  o.temperature = 0;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = SamplingOptions{};
  o.top_p = 1.5;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = SamplingOptions{};
  o.repetition_penalty = 0.5;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = SamplingOptions{};
  o.guidance = -0.5;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o.guidance = std::nan("");
  EXPECT_THROW(o.validate(), std::invalid_argument);
}

}  // namespace
}  // namespace kmidi::models
