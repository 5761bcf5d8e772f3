// Export and inference latency, driven by scripts/bench_export.sh (not a test).
// For the MIDI generator (full graph at sequence S, one incremental step after
// S-1 cached tokens) and spectocloud (F frames), at batch 1: the time to emit,
// check and write each graph, then onnxruntime CPU latency (one intra-op
// thread, graph optimizations "all", as the engines run it) beside LibTorch
// eager latency (one thread, no grad) on the same inputs, median and p90 of N
// runs after warm-up runs. Model sizes are the families' option defaults
// (MidiGeneratorOptions, SpectocloudOptions) over the real tokenizer's
// vocabulary; latency does not depend on the weights' values.

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/Files.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "onnx/check/OrtRunner.h"
#include "onnx/Metadata.h"
#include "onnx/ModelBuilder.h"
#include "onnx/ModelCheck.h"
#include "models/MidiGeneratorOnnx.h"
#include "models/Spectocloud.h"

namespace {

using namespace kmidi;
using Clock = std::chrono::steady_clock;

struct Stats {
  double median = 0, p90 = 0;
};

Stats stats_of(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  const auto at = [&](double q) {
    const double pos = q * static_cast<double>(ms.size() - 1);
    const size_t lo = static_cast<size_t>(pos);
    const size_t hi = std::min(lo + 1, ms.size() - 1);
    return ms[lo] + (pos - static_cast<double>(lo)) * (ms[hi] - ms[lo]);
  };
  return {at(0.5), at(0.9)};
}

Stats time_eager(const std::function<void()>& run, int warmup, int runs) {
  torch::NoGradGuard no_grad;
  for (int i = 0; i < warmup; ++i) run();
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = Clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return stats_of(ms);
}

double export_graph(const std::string& path, const std::function<void(onnx::ModelBuilder&)>& emit) {
  const auto t0 = Clock::now();
  onnx::ModelBuilder b;
  b.set_metadata(onnx::meta::kFormatVersion, onnx::meta::kCurrentFormatVersion);
  emit(b);
  const std::string bytes = b.build();
  onnx::check_model(bytes, path);
  files::write_atomic(path, bytes);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void row(const char* what, const char* shape, double export_s, const Stats& ort, const Stats& eager) {
  std::printf("| %-28s | %-22s | %8.2f | %9.3f | %9.3f | %9.3f | %9.3f |\n", what, shape, export_s, ort.median,
              ort.p90, eager.median, eager.p90);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"export and latency benchmark (scripts/bench_export.sh)"};
  int runs = 50, warmup = 5;
  int64_t sequence = 256, frames = 64;
  std::string out = "/tmp/kmidi_bench_export";
  app.add_option("--runs", runs, "timed runs per measurement")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed runs first")->capture_default_str();
  app.add_option("--sequence", sequence, "generator sequence length")->capture_default_str();
  app.add_option("--frames", frames, "spectocloud frames")->capture_default_str();
  app.add_option("--out", out, "folder for the exported files")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  at::set_num_threads(1);
  files::ensure_dir(out);
  torch::manual_seed(0);
  onnx::OrtOptions ort;
  ort.intra_op_threads = 1;
  const onnx::TimingOptions timing{warmup, runs};

  std::printf("| graph | shape (batch 1) | export s | ORT median ms | ORT p90 ms | LibTorch median ms | LibTorch p90 ms |\n");
  std::printf("|---|---|---|---|---|---|---|\n");

  // MIDI generator.
  const tokenizer::Tokenizer tok{tokenizer::TokenizerConfig{}};
  models::MidiGeneratorOptions go;
  go.vocab_size = tok.vocab_size();
  models::MidiGenerator generator(go);
  generator->eval();
  const std::string full = out + "/generator.onnx", incremental = out + "/generator_incremental.onnx";
  const double full_s = export_graph(full, [&](onnx::ModelBuilder& b) { models::emit_midi_generator(b, *generator, false); });
  const double inc_s = export_graph(incremental, [&](onnx::ModelBuilder& b) { models::emit_midi_generator(b, *generator, true); });
  const auto ids = torch::randint(4, go.vocab_size, {1, sequence}, torch::kLong);
  const auto emotion = torch::rand({1, go.emotion_dim}) * 2 - 1;
  {
    data::NamedTensors in;
    in.set("input_ids", ids);
    in.set("emotion", emotion);
    const auto o = onnx::time_onnxruntime(full, in, timing, ort);
    const Stats e = time_eager([&] { generator->forward(ids, emotion); }, warmup, runs);
    const std::string shape = "sequence " + std::to_string(sequence);
    row("generator full", shape.c_str(), full_s, {o.median_ms, o.p90_ms}, e);
  }
  {
    models::KVCache cache;
    {
      torch::NoGradGuard no_grad;
      generator->forward_cached(ids.narrow(1, 0, sequence - 1), emotion, cache);
    }
    const auto next = ids.narrow(1, sequence - 1, 1).contiguous();
    data::NamedTensors in;
    in.set("input_ids", next);
    in.set("emotion", emotion);
    for (int64_t l = 0; l < go.n_layers; ++l) {
      in.set(models::past_key_name(l), cache.keys[static_cast<size_t>(l)]);
      in.set(models::past_value_name(l), cache.values[static_cast<size_t>(l)]);
    }
    const auto o = onnx::time_onnxruntime(incremental, in, timing, ort);
    const Stats e = time_eager(
        [&] {
          models::KVCache step = cache;  // the same cached state every run
          generator->forward_cached(next, emotion, step);
        },
        warmup, runs);
    const std::string shape = "1 token after " + std::to_string(sequence - 1);
    row("generator incremental step", shape.c_str(), inc_s, {o.median_ms, o.p90_ms}, e);
  }

  // Spectocloud.
  models::SpectocloudOptions so;
  models::Spectocloud cloud(so);
  cloud->eval();
  const std::string cloud_path = out + "/spectocloud.onnx";
  const double cloud_s = export_graph(cloud_path, [&](onnx::ModelBuilder& b) { models::emit_spectocloud(b, *cloud); });
  {
    data::NamedTensors in;
    in.set("spectrogram", torch::randn({1, so.n_mels, frames}));
    in.set("emotion", torch::rand({1, so.emotion_dim}) * 2 - 1);
    in.set("midi_features", torch::rand({1, so.midi_features}));
    const auto o = onnx::time_onnxruntime(cloud_path, in, timing, ort);
    const Stats e = time_eager([&] { cloud->forward(in.at("spectrogram"), in.at("emotion"), in.at("midi_features")); },
                               warmup, runs);
    const std::string shape = std::to_string(frames) + " frames";
    row("spectocloud", shape.c_str(), cloud_s, {o.median_ms, o.p90_ms}, e);
  }
  return 0;
}
