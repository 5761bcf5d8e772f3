// Throughput of the MIDI reader: reads (and pairs, and times) every file of a
// list on N threads, R times, and prints the median run. Driven by
// scripts/bench_midi.sh, which runs the mido peer on the same files.
//
//   midi_bench --list FILES.txt [--threads N] [--repeat R]
//
// Prints one line of key=value pairs:
//   kmidi threads=N files=F errors=E notes=K median_s=S files_per_s=X notes_per_s=Y
// Files the strict reader rejects are read leniently and counted as errors.

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
#include "datasets/midi/MidiReader.h"

namespace {

struct RunTotals {
  double seconds = 0.0;
  int64_t notes = 0;
  int64_t errors = 0;
};

RunTotals run_once(const std::vector<std::string>& files, int threads) {
  std::atomic<size_t> next{0};
  std::atomic<int64_t> notes{0}, errors{0};
  auto worker = [&] {
    int64_t my_notes = 0, my_errors = 0;
    kmidi::midi::ReadOptions lenient;
    lenient.strict = false;
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
      // ---- TOKENIZATION HOOK ------------------------------------------------
      // The tokenizer (issue 3, tokenizer part) plugs in here: an option
      // `--tokenize CONFIG` builds the tokenizer once per run and encodes
      // `score` into tokens, adding the token count to the totals, so that
      // the benchmark measures parse + tokenize per file.
      // ------------------------------------------------------------------------
    }
    notes += my_notes;
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
  totals.errors = errors;
  return totals;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"MIDI reader throughput: files/s and notes/s over a list of files"};
  std::string list;
  int threads = 1, repeat = 5;
  app.add_option("--list", list, "text file with one MIDI path per line")->required();
  app.add_option("--threads", threads, "reader threads")->check(CLI::Range(1, 256));
  app.add_option("--repeat", repeat, "timed runs; the median is printed")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);

  std::vector<std::string> files;
  std::ifstream in(list);
  if (!in) {
    std::fprintf(stderr, "midi_bench: cannot open %s\n", list.c_str());
    return 2;
  }
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) files.push_back(line);
  }
  if (files.empty()) {
    std::fprintf(stderr, "midi_bench: %s lists no files\n", list.c_str());
    return 2;
  }
  run_once(files, threads);  // untimed: warms the page cache and the allocator
  std::vector<RunTotals> runs;
  for (int r = 0; r < repeat; ++r) runs.push_back(run_once(files, threads));
  std::sort(runs.begin(), runs.end(), [](const RunTotals& a, const RunTotals& b) { return a.seconds < b.seconds; });
  const RunTotals& median = runs[runs.size() / 2];
  std::printf("kmidi threads=%d files=%zu errors=%lld notes=%lld median_s=%.6f files_per_s=%.1f notes_per_s=%.0f\n",
              threads, files.size(), static_cast<long long>(median.errors), static_cast<long long>(median.notes),
              median.seconds, static_cast<double>(files.size()) / median.seconds,
              static_cast<double>(median.notes) / median.seconds);
  return 0;
}
