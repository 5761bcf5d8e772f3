// Throughput of parse + tokenize: reads every file of a list with the MIDI
// reader and encodes it with the tokenizer of a prepare config, on N threads,
// R times, and prints the median run in midi_bench's format (plus tokens).
// Driven by scripts/bench_midi.sh next to midi_bench and the mido peer.
//
//   tokenize_bench --list FILES.txt [--config configs/prepare_pop909.yaml] [--threads N] [--repeat R]
//
// Without --config the default tokenizer is used (every token kind on: drums,
// per-note programs, time signatures, with unknown ones read as 4/4), so that
// every note of every file is encoded.
//
// Prints one line of key=value pairs:
//   kmidi+tokenize threads=N files=F errors=E notes=K tokens=T median_s=S files_per_s=X notes_per_s=Y
// Files the strict reader rejects are read leniently and counted as errors
// (as in midi_bench); files the tokenizer refuses are counted as errors too.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/Errors.h"
#include "datasets/corpus/PrepareConfig.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/tokenizer/Tokenizer.h"

namespace {

struct RunTotals {
  double seconds = 0.0;
  int64_t notes = 0, tokens = 0, errors = 0;
};

RunTotals run_once(const std::vector<std::string>& files, const kmidi::tokenizer::Tokenizer& tok, int threads) {
  std::atomic<size_t> next{0};
  std::atomic<int64_t> notes{0}, tokens{0}, errors{0};
  auto worker = [&] {
    int64_t my_notes = 0, my_tokens = 0, my_errors = 0;
    kmidi::midi::ReadOptions lenient;
    lenient.strict = false;
    std::vector<int32_t> ids;  // reused: encoding allocates only while it grows
    for (size_t i = next++; i < files.size(); i = next++) {
      kmidi::midi::Score score;
      try {
        score = kmidi::midi::read_midi_file(files[i]);
      } catch (const kmidi::DataError&) {
        ++my_errors;
        try {
          score = kmidi::midi::read_midi_file(files[i], lenient);
        } catch (const kmidi::DataError&) {
          continue;
        }
      }
      my_notes += static_cast<int64_t>(score.notes.size());
      try {
        tok.encode(score, ids);
        my_tokens += static_cast<int64_t>(ids.size());
      } catch (const kmidi::DataError&) {
        ++my_errors;
      }
    }
    notes += my_notes;
    tokens += my_tokens;
    errors += my_errors;
  };
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  RunTotals totals;
  totals.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  totals.notes = notes;
  totals.tokens = tokens;
  totals.errors = errors;
  return totals;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"MIDI parse + tokenize throughput: files/s and notes/s over a list of files"};
  std::string list, config_path;
  int threads = 1, repeat = 5;
  app.add_option("--list", list, "text file with one MIDI path per line")->required();
  app.add_option("--config", config_path, "prepare config whose tokenizer section is used (default: all token kinds)");
  app.add_option("--threads", threads, "threads")->check(CLI::Range(1, 256));
  app.add_option("--repeat", repeat, "timed runs; the median is printed")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);

  std::vector<std::string> files;
  std::ifstream in(list);
  if (!in) {
    std::fprintf(stderr, "tokenize_bench: cannot open %s\n", list.c_str());
    return 2;
  }
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) files.push_back(line);
  }
  if (files.empty()) {
    std::fprintf(stderr, "tokenize_bench: %s lists no files\n", list.c_str());
    return 2;
  }
  try {
    kmidi::tokenizer::TokenizerConfig config;
    config.time_signature_fallback = "4/4";
    if (!config_path.empty()) config = kmidi::corpus::load_prepare_config(config_path).tokenizer;
    const kmidi::tokenizer::Tokenizer tok(config);
    run_once(files, tok, threads);  // untimed: warms the page cache and the allocator
    std::vector<RunTotals> runs;
    for (int r = 0; r < repeat; ++r) runs.push_back(run_once(files, tok, threads));
    std::sort(runs.begin(), runs.end(), [](const RunTotals& a, const RunTotals& b) { return a.seconds < b.seconds; });
    const RunTotals& median = runs[runs.size() / 2];
    std::printf(
        "kmidi+tokenize threads=%d files=%zu errors=%lld notes=%lld tokens=%lld median_s=%.6f files_per_s=%.1f "
        "notes_per_s=%.0f\n",
        threads, files.size(), static_cast<long long>(median.errors), static_cast<long long>(median.notes),
        static_cast<long long>(median.tokens), median.seconds, static_cast<double>(files.size()) / median.seconds,
        static_cast<double>(median.notes) / median.seconds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenize_bench: %s\n", e.what());
    return 2;
  }
  return 0;
}
