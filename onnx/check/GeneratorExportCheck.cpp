#include "onnx/check/GeneratorExportCheck.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "core/Errors.h"
#include "onnx/check/TokenizerMetadata.h"

namespace kmidi::onnx {
namespace {

const std::string& candidate(const std::map<std::string, std::string>& candidates, const std::string& suffix) {
  const auto it = candidates.find(suffix);
  if (it == candidates.end()) {
    throw UsageError("generator checks: no graph with suffix '" + suffix + "' among the task's graphs");
  }
  return it->second;
}

std::string note_text(const midi::Note& n) {
  return "pitch " + std::to_string(n.pitch) + " velocity " + std::to_string(n.velocity) + " program " +
         std::to_string(n.program) + " ticks " + std::to_string(n.start_tick) + ".." + std::to_string(n.end_tick);
}

}  // namespace

void check_generator_graphs(const std::map<std::string, std::string>& candidates,
                            const tokenizer::Tokenizer& trained_with, const GeneratorCheckInputs& check) {
  const std::string& full = candidate(candidates, check.full_suffix);
  const std::string& incremental = candidate(candidates, check.incremental_suffix);
  const ParityReport report = check_incremental_matches_full(full, incremental, check.inputs, check.incremental);
  spdlog::info("incremental graph reproduces the full graph token by token: {}", report.summary().substr(0, 120));

  if (check.decode_ids.empty()) throw UsageError("generator checks: no ids to decode");
  const tokenizer::Tokenizer loaded = tokenizer_from_onnx(full);
  if (loaded.to_json() != trained_with.to_json()) {
    throw CheckFailed(full + ": the tokenizer in its metadata differs from the one the model was trained with (sha256 " +
                      loaded.sha256() + " vs " + trained_with.sha256() + ")");
  }
  const midi::Score mine = loaded.decode(check.decode_ids), reference = trained_with.decode(check.decode_ids);
  if (mine.notes.size() != reference.notes.size()) {
    throw CheckFailed(full + ": ids decoded with the file's metadata give " + std::to_string(mine.notes.size()) +
                      " notes; expected " + std::to_string(reference.notes.size()));
  }
  for (size_t i = 0; i < mine.notes.size(); ++i) {
    const std::string a = note_text(mine.notes[i]), b = note_text(reference.notes[i]);
    if (a != b) throw CheckFailed(full + ": decoded note " + std::to_string(i) + " is " + a + "; expected " + b);
  }
}

std::function<void(const std::map<std::string, std::string>&)> generator_extra_check(tokenizer::Tokenizer trained_with,
                                                                                     GeneratorCheckInputs check) {
  return [tok = std::move(trained_with), check = std::move(check)](const std::map<std::string, std::string>& c) {
    check_generator_graphs(c, tok, check);
  };
}

}  // namespace kmidi::onnx
