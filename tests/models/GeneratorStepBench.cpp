// Training-step throughput of the MIDI generator alone (not a test): random
// tokens, the task's label-smoothed loss, backward, clipping and kmidi's
// AdamW, under train.precision's autocast. Prints one JSON line with the
// median tokens/s over the timed steps and, with --profile, the step's
// breakdown (train/Profile.h). Used for before/after comparisons of model
// changes: build it, copy the binary, change the model, rebuild, and run
// both alternately (scripts/bench_generator_step.sh).

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "models/MidiGenerator.h"
#include "train/Optimizer.h"
#include "train/Precision.h"
#include "train/Profile.h"
#include "train/runtime/Runtime.h"
#include "train/TrainConfig.h"

int main(int argc, char** argv) {
  using namespace kmidi;
  CLI::App app("generator training-step benchmark");
  models::MidiGeneratorOptions o;
  o.vocab_size = 301;
  o.d_model = 384;
  o.n_layers = 8;
  o.n_heads = 6;
  o.d_ff = 1536;
  int64_t seq = 512, batch = 4, steps = 10, warmup = 2;
  int threads = 2;
  std::string precision = "bf16";
  bool profile = false;
  app.add_option("--vocab", o.vocab_size);
  app.add_option("--d-model", o.d_model);
  app.add_option("--layers", o.n_layers);
  app.add_option("--heads", o.n_heads);
  app.add_option("--d-ff", o.d_ff);
  app.add_option("--dropout", o.dropout);
  app.add_option("--seq", seq);
  app.add_option("--batch", batch);
  app.add_option("--steps", steps, "timed steps");
  app.add_option("--warmup", warmup, "untimed steps first");
  app.add_option("--threads", threads);
  app.add_option("--precision", precision)->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_flag("--profile", profile, "print the per-step breakdown of the timed steps");
  CLI11_PARSE(app, argc, argv);

  train::configure_process(threads);  // threads and malloc as `kmidi train` sets them
  torch::manual_seed(0);
  models::MidiGenerator model(o);
  model->train();
  std::vector<train::NamedParameter> params;
  for (const auto& p : model->named_parameters()) params.push_back({p.key(), p.value(), p.value().dim() >= 2});
  train::OptimizerConfig oc;
  train::AdamW adamw(params, oc);
  const auto prec = precision == "bf16" ? train::Precision::kBf16 : train::Precision::kFp32;
  const at::Tensor ids = torch::randint(4, o.vocab_size, {batch, seq + 1});
  const at::Tensor input = ids.narrow(1, 0, seq).contiguous(), labels = ids.narrow(1, 1, seq).reshape({-1});
  const at::Tensor mask = torch::ones({batch, seq}, torch::kBool);
  const at::Tensor emotion = torch::zeros({batch, o.emotion_dim});

  std::unique_ptr<train::profile::StepProfiler> profiler;
  std::vector<double> rates;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    if (s == warmup && profile) profiler = std::make_unique<train::profile::StepProfiler>();
    if (profiler) profiler->begin_step();
    const auto start = std::chrono::steady_clock::now();
    adamw.zero_grad();
    at::Tensor loss;
    {
      train::profile::PhaseScope phase(train::profile::Phase::kForward);
      loss = train::with_autocast(prec, torch::kCPU, [&] {
        const at::Tensor logits = model->forward(input, emotion, mask);
        const at::Tensor log_probs = torch::log_softmax(logits.reshape({-1, o.vocab_size}).to(torch::kFloat), -1);
        const at::Tensor nll = -log_probs.gather(1, labels.unsqueeze(1)).squeeze(1);
        return (0.9 * nll - 0.1 * log_probs.mean(-1)).sum() / static_cast<double>(labels.numel());
      });
    }
    {
      train::profile::PhaseScope phase(train::profile::Phase::kBackward);
      loss.backward();
    }
    {
      train::profile::PhaseScope phase(train::profile::Phase::kOptimizer);
      train::clip_gradients(params, 1.0);
      adamw.step();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (profiler) profiler->end_step();
    if (s >= warmup) rates.push_back(static_cast<double>(batch * seq) / seconds);
  }
  std::sort(rates.begin(), rates.end());
  const double median = rates[rates.size() / 2];
  if (profiler) std::cerr << profiler->report().table(25) << "\n";
  std::printf("{\"tokens_per_s\": %.1f, \"precision\": \"%s\", \"seq\": %ld, \"batch\": %ld, \"d_model\": %ld, "
              "\"layers\": %ld, \"threads\": %d}\n",
              median, precision.c_str(), static_cast<long>(seq), static_cast<long>(batch),
              static_cast<long>(o.d_model), static_cast<long>(o.n_layers), threads);
  return 0;
}
