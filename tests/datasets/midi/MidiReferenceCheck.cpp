// Compares kmidi's MIDI reader with the mido reference (tests/reference/
// mido_notes.py) on every MIDI file of a corpus: same accept/reject verdict,
// same notes (pitch, velocity, channel, program, track, ticks), times within
// 1e-6 s, same tempo map and pairing counts. One python process per corpus
// streams JSON lines; the comparison runs here, file by file, as they arrive.
//
//   midi_reference_check --root DIR [--python /usr/bin/python3] [--script mido_notes.py]
//   midi_reference_check --coverage --root DATA --corpora a,b,c
//
// Exit 0 when every file agrees (or differs only in a way MidiReader.h
// documents), 1 otherwise; each disagreement is printed with its reason.

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/Errors.h"
#include "core/Strings.h"
#include "datasets/midi/MidiReader.h"

namespace {

namespace fs = std::filesystem;
using kmidi::midi::Score;
using nlohmann::json;

constexpr double kSecondsTolerance = 1e-6;

/// kmidi strict errors that MidiReader.h documents as stricter than mido;
/// for these the lenient read must match mido's strict parse.
const std::vector<std::string> kStricterThanMido = {
    "running status after a meta, sysex or system event",
    "longer than 4 bytes",
    "division of 0 ticks",
    "SMPTE division",
    "file format",
};
/// Documented refusals in both modes (no lenient comparison).
const std::vector<std::string> kRefusedByKmidi = {"format 2 (independent sequences) is not supported"};

bool contains_any(const std::string& text, const std::vector<std::string>& needles) {
  return std::any_of(needles.begin(), needles.end(),
                     [&](const std::string& n) { return text.find(n) != std::string::npos; });
}

bool is_midi_name(const fs::path& p) {
  const std::string ext = kmidi::strings::to_lower(p.extension().string());
  return ext == ".mid" || ext == ".midi" || ext == ".kar";
}

std::vector<std::string> list_midi_files(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file() && is_midi_name(entry.path())) out.push_back(fs::relative(entry.path(), root).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// `text` as one single-quoted shell word.
std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct ReadResult {
  std::optional<Score> score;
  std::string error;
};

ReadResult read_kmidi(const std::string& path, bool strict) {
  kmidi::midi::ReadOptions options;
  options.strict = strict;
  try {
    return {kmidi::midi::read_midi_file(path, options), ""};
  } catch (const kmidi::DataError& e) {
    return {std::nullopt, e.what()};
  }
}

/// First difference between kmidi's score and a reference RESULT, or "".
std::string compare(const Score& s, const json& ref, int64_t& notes_compared) {
  if (ref.at("end_tick").get<int64_t>() != s.end_tick) {
    return fmt::format("end tick {} vs mido {}", s.end_tick, ref.at("end_tick").get<int64_t>());
  }
  const json& tempos = ref.at("tempos");
  if (tempos.size() != s.tempos.size()) return fmt::format("{} tempo changes vs mido {}", s.tempos.size(), tempos.size());
  for (size_t i = 0; i < tempos.size(); ++i) {
    if (tempos[i][0].get<int64_t>() != s.tempos[i].tick ||
        tempos[i][1].get<int64_t>() != s.tempos[i].microseconds_per_quarter) {
      return fmt::format("tempo change {}: tick {} {} us vs mido {}", i, s.tempos[i].tick,
                         s.tempos[i].microseconds_per_quarter, tempos[i].dump());
    }
  }
  const auto& st = s.stats;
  if (ref.at("unmatched").get<int64_t>() != st.unmatched_note_offs || ref.at("unclosed").get<int64_t>() != st.unclosed_notes ||
      ref.at("zero_length").get<int64_t>() != st.zero_length_notes) {
    return fmt::format("pairing counts (unmatched, unclosed, zero-length) {} {} {} vs mido {} {} {}", st.unmatched_note_offs,
                       st.unclosed_notes, st.zero_length_notes, ref.at("unmatched").get<int64_t>(),
                       ref.at("unclosed").get<int64_t>(), ref.at("zero_length").get<int64_t>());
  }
  const json& notes = ref.at("notes");
  if (notes.size() != s.notes.size()) return fmt::format("{} notes vs mido {}", s.notes.size(), notes.size());
  for (size_t i = 0; i < notes.size(); ++i) {
    const json& r = notes[i];
    const kmidi::midi::Note& n = s.notes[i];
    const bool same = r[0].get<int>() == n.pitch && r[1].get<int>() == n.velocity && r[2].get<int>() == n.channel &&
                      r[3].get<int>() == n.program && r[4].get<int>() == n.track &&
                      r[5].get<int64_t>() == n.start_tick && r[6].get<int64_t>() == n.end_tick &&
                      std::abs(r[7].get<double>() - n.start_s) <= kSecondsTolerance &&
                      std::abs(r[8].get<double>() - n.end_s) <= kSecondsTolerance;
    if (!same) {
      return fmt::format(
          "note {}: kmidi [pitch {}, velocity {}, channel {}, program {}, track {}, ticks {}..{}, {:.9f}..{:.9f} s] "
          "vs mido {}",
          i, n.pitch, n.velocity, n.channel, n.program, n.track, n.start_tick, n.end_tick, n.start_s, n.end_s, r.dump());
    }
  }
  notes_compared += static_cast<int64_t>(notes.size());
  return "";
}

struct Tally {
  int files = 0, both_accept = 0, both_reject = 0, lenient_agree = 0, documented = 0, failures = 0;
  int64_t notes = 0;
};

int run_check(const std::string& root, const std::string& python, const std::string& script) {
  const auto started = std::chrono::steady_clock::now();
  if (!fs::is_directory(root)) {
    std::fprintf(stderr, "midi_reference_check: %s is not a folder (missing data is a failure)\n", root.c_str());
    return 1;
  }
  const std::vector<std::string> expected = list_midi_files(root);
  if (expected.empty()) {
    std::fprintf(stderr, "midi_reference_check: no MIDI files under %s\n", root.c_str());
    return 1;
  }
  const std::string command = shell_quote(python) + " " + shell_quote(script) + " " + shell_quote(root);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) {
    std::fprintf(stderr, "midi_reference_check: cannot run %s\n", command.c_str());
    return 1;
  }
  Tally t;
  std::set<std::string> seen;
  auto failure = [&](const std::string& file, const std::string& why) {
    ++t.failures;
    std::printf("FAIL %s: %s\n", file.c_str(), why.c_str());
  };
  std::string line;
  char buffer[1 << 16];
  auto handle_line = [&](const std::string& text) {
    const json record = json::parse(text);
    const std::string rel = record.at("file").get<std::string>();
    seen.insert(rel);
    ++t.files;
    const std::string path = (fs::path(root) / rel).string();
    const json& mido_strict = record.at("strict");
    const bool mido_ok = mido_strict.at("ok").get<bool>();
    const ReadResult strict = read_kmidi(path, true);
    if (mido_ok && strict.score) {
      const std::string diff = compare(*strict.score, mido_strict, t.notes);
      if (diff.empty()) {
        ++t.both_accept;
      } else {
        failure(rel, "strict: " + diff);
      }
    } else if (!mido_ok && !strict.score) {
      ++t.both_reject;
      std::printf("both reject %s\n  mido:  %s\n  kmidi: %s\n", rel.c_str(),
                  mido_strict.at("error").get<std::string>().c_str(), strict.error.c_str());
      const json& clip = record.at("clip");
      const ReadResult lenient = read_kmidi(path, false);
      if (clip.at("ok").get<bool>()) {
        if (!lenient.score) {
          failure(rel, "mido clip=True parses it but kmidi lenient rejects it: " + lenient.error);
        } else {
          const std::string diff = compare(*lenient.score, clip, t.notes);
          if (diff.empty()) {
            ++t.lenient_agree;
            std::printf("  lenient kmidi == mido clip=True (%zu notes, %lld repairs)\n", lenient.score->notes.size(),
                        static_cast<long long>(lenient.score->stats.repairs));
          } else {
            failure(rel, "lenient vs mido clip=True: " + diff);
          }
        }
      } else {
        std::printf("  mido clip=True: %s\n  kmidi lenient: %s\n", clip.at("error").get<std::string>().c_str(),
                    lenient.score ? fmt::format("{} notes, {} repairs", lenient.score->notes.size(),
                                                lenient.score->stats.repairs).c_str()
                                  : lenient.error.c_str());
      }
    } else if (mido_ok && !strict.score) {
      if (contains_any(strict.error, kRefusedByKmidi)) {
        ++t.documented;
        std::printf("documented refusal %s: %s\n", rel.c_str(), strict.error.c_str());
      } else if (contains_any(strict.error, kStricterThanMido)) {
        const ReadResult lenient = read_kmidi(path, false);
        if (!lenient.score) {
          failure(rel, "documented strict-only rejection, but lenient rejects it too: " + lenient.error);
        } else {
          const std::string diff = compare(*lenient.score, mido_strict, t.notes);
          if (diff.empty()) {
            ++t.documented;
            std::printf("documented: kmidi strict rejects %s, mido accepts; lenient kmidi == mido (%zu notes)\n  %s\n",
                        rel.c_str(), lenient.score->notes.size(), strict.error.c_str());
          } else {
            failure(rel, "lenient vs mido: " + diff);
          }
        }
      } else {
        failure(rel, "mido accepts it, kmidi strict rejects it: " + strict.error);
      }
    } else {  // mido rejects, kmidi accepts
      if (strict.score->stats.unknown_chunks > 0) {
        ++t.documented;
        std::printf("documented: kmidi skips %lld alien chunk(s) in %s that mido rejects\n",
                    static_cast<long long>(strict.score->stats.unknown_chunks), rel.c_str());
      } else {
        failure(rel, "mido rejects it (" + mido_strict.at("error").get<std::string>() + "), kmidi strict accepts it");
      }
    }
  };
  while (std::fgets(buffer, sizeof(buffer), pipe)) {
    line += buffer;
    if (!line.empty() && line.back() == '\n') {
      try {
        handle_line(line);
      } catch (const std::exception& e) {
        failure("(reference line)", std::string("cannot process: ") + e.what());
      }
      line.clear();
    }
  }
  const int status = ::pclose(pipe);
  if (status != 0) failure("(reference)", fmt::format("{} exited with status {}", command, status));
  for (const std::string& rel : expected) {
    if (!seen.count(rel)) failure(rel, "not reported by the mido reference");
  }
  if (seen.size() != expected.size()) failure("(reference)", fmt::format("reference reported {} files, kmidi lists {}", seen.size(), expected.size()));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf(
      "%s: %d files; both accept and agree %d (%lld notes compared); both reject %d (lenient == mido clip: %d); "
      "documented differences %d; failures %d; %.1f s\n",
      root.c_str(), t.files, t.both_accept, static_cast<long long>(t.notes), t.both_reject, t.lenient_agree,
      t.documented, t.failures, seconds);
  return t.failures == 0 ? 0 : 1;
}

/// Every MIDI file under `data` lies in one of the corpora the reference tests cover.
int run_coverage(const std::string& data, const std::string& corpora_list) {
  const std::vector<std::string> corpora = kmidi::strings::split(corpora_list, ',');
  int uncovered = 0, covered = 0;
  for (const std::string& rel : list_midi_files(data)) {
    const std::string top = fs::path(rel).begin()->string();
    if (std::find(corpora.begin(), corpora.end(), top) == corpora.end()) {
      std::printf("not covered by a reference test: %s\n", rel.c_str());
      ++uncovered;
    } else {
      ++covered;
    }
  }
  for (const std::string& c : corpora) {
    if (!fs::is_directory(fs::path(data) / c)) {
      std::printf("corpus folder missing: %s\n", (fs::path(data) / c).c_str());
      ++uncovered;
    }
  }
  std::printf("%d MIDI files under %s covered, %d problems\n", covered, data.c_str(), uncovered);
  return uncovered == 0 && covered > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"compare kmidi's MIDI reader with the mido reference"};
  std::string root, python = "/usr/bin/python3", script, corpora;
  bool coverage = false;
  app.add_option("--root", root, "corpus folder (or, with --coverage, the data folder)")->required();
  app.add_option("--python", python, "python interpreter with mido");
  app.add_option("--script", script, "tests/reference/mido_notes.py");
  app.add_flag("--coverage", coverage, "check that --corpora cover every MIDI file under --root");
  app.add_option("--corpora", corpora, "comma-separated corpus folders (with --coverage)");
  CLI11_PARSE(app, argc, argv);
  if (coverage) return run_coverage(root, corpora);
  if (script.empty()) {
    std::fprintf(stderr, "midi_reference_check: --script is required\n");
    return 2;
  }
  return run_check(root, python, script);
}
