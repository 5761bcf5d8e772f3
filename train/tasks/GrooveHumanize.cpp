#include "train/tasks/GrooveHumanize.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <tuple>

#include "core/Config.h"
#include "core/Errors.h"
#include "core/Strings.h"
#include "datasets/groove/GrooveDataset.h"
#include "train/Checkpoint.h"
#include "train/Job.h"
#include "train/tasks/GrooveTask.h"

namespace kmidi::train {

using groove::kDrumClasses;

GrooveCheckpoint load_groove_checkpoint(const std::string& path, bool use_ema) {
  CheckpointFile file(path);
  const auto meta = nlohmann::json::parse(file.bytes(checkpoint_section::kMeta), nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) throw DataError(path + ": meta.json is not a JSON object");
  const std::string task = meta.value("task", std::string());
  if (task != "groove") {
    throw UsageError(path + ": the checkpoint was trained for task '" + task + "'; expected a 'groove' checkpoint");
  }
  const std::string yaml(file.bytes(checkpoint_section::kConfig));
  const config::Document doc = config::Document::load_string(
      yaml, path + ":config.yaml", std::filesystem::path(path).parent_path().string());
  JobConfig job;
  job.task_config = std::make_unique<GrooveTaskConfig>();
  doc.read_into(job);
  auto& sections = static_cast<GrooveTaskConfig&>(*job.task_config);
  if (sections.loss.heads.empty()) sections.loss = default_groove_loss();

  GrooveTrainable trainable(sections.model.options(), sections.loss);
  NamedTensorList target;
  for (const auto& item : trainable->named_parameters(true)) target.emplace_back(item.key(), item.value());
  for (const auto& item : trainable->named_buffers(true)) target.emplace_back(item.key(), item.value());
  load_named_tensors(file.tensors(checkpoint_section::kModel), target, path + ": model");
  GrooveCheckpoint out;
  if (use_ema && file.has(checkpoint_section::kEma)) {
    NamedTensorList params;
    for (const auto& item : trainable->named_parameters(true)) params.emplace_back(item.key(), item.value());
    load_named_tensors(file.tensors(checkpoint_section::kEma), params, path + ": ema");
    out.used_ema = true;
  }
  out.model = trainable->net;
  out.model->eval();
  out.window_steps = sections.data.window_steps;
  out.players = sections.model.players;
  out.step = meta.value("step", int64_t{0});
  return out;
}

int64_t player_id(const GrooveCheckpoint& checkpoint, const std::string& name) {
  if (name.empty()) return 0;
  const auto& players = checkpoint.players;
  const std::optional<int64_t> id = groove::player_id(players, name);
  if (!id) {
    throw UsageError("humanize: player '" + name + "' is not one the model was trained on" +
                     (players.empty() ? std::string(" (it has no player conditioning)")
                                      : " (known: " + strings::join(players, ", ") + ")"));
  }
  return *id;
}

midi::Score humanize(const midi::Score& score, models::GrooveModelImpl& model, int64_t window_steps,
                     HumanizeStats* stats, int64_t player) {
  const int64_t num_players = model.options().num_players;
  if (player < 0 || player > num_players) {
    throw UsageError("humanize: player id " + std::to_string(player) + " is out of range; the model knows " +
                     std::to_string(num_players) + " player(s) (0: any player)");
  }
  if (score.division.smpte) {
    throw UsageError("humanize: the file is SMPTE-timed (no beats, no 16th-note grid); expected a PPQ division");
  }
  HumanizeStats local;
  HumanizeStats& st = stats ? *stats : local;
  st = HumanizeStats{};
  st.notes = static_cast<int64_t>(score.notes.size());

  const groove::DrumGrid grid = groove::quantize_drums(score);
  groove::WindowSettings w;
  w.steps = window_steps;
  w.hop = window_steps;
  w.min_hits = 1;
  std::vector<groove::GrooveItem> items = groove::grid_windows(score, grid, "input", w);
  st.windows = static_cast<int64_t>(items.size());

  // (grid step, class) -> predicted offset in steps and velocity in [0, 1].
  std::map<std::pair<int64_t, int>, std::pair<double, double>> cells;
  const groove::GrooveDataset data(items, window_steps, false);
  torch::NoGradGuard no_grad;
  const c10::Device device = model.hit_embedding->weight.device();
  constexpr size_t kChunk = 64;
  for (size_t first = 0; first < items.size(); first += kChunk) {
    std::vector<int64_t> indices(std::min(kChunk, items.size() - first));
    std::iota(indices.begin(), indices.end(), static_cast<int64_t>(first));
    const data::Batch batch = data.get_batch(indices);
    const auto rows = static_cast<int64_t>(indices.size());
    const at::Tensor players =
        num_players > 0 ? torch::full({rows}, player, torch::dtype(torch::kLong).device(device)) : at::Tensor();
    auto [offsets, velocities, style] =
        model.forward(batch.inputs.at("hits").to(device), batch.inputs.at("tempo").to(device), players);
    const at::Tensor o = offsets.to(torch::kCPU, torch::kDouble).contiguous();
    const at::Tensor v = velocities.to(torch::kCPU, torch::kDouble).contiguous();
    const auto oa = o.accessor<double, 3>();
    const auto va = v.accessor<double, 3>();
    for (size_t i = 0; i < indices.size(); ++i) {
      const groove::GrooveItem& item = items[first + i];
      for (const groove::Hit& h : item.hits) {
        const auto row = static_cast<int64_t>(i);
        cells[{item.first_step + h.step, h.drum_class}] = {oa[row][h.step][h.drum_class], va[row][h.step][h.drum_class]};
      }
    }
  }

  midi::Score out = score;
  const double ticks_per_step = static_cast<double>(score.division.ticks_per_quarter) / groove::kStepsPerQuarter;
  std::vector<std::pair<size_t, int64_t>> moved;  // note index, grid step
  for (size_t i = 0; i < out.notes.size(); ++i) {
    midi::Note& n = out.notes[i];
    if (!n.is_drum()) continue;
    const int c = groove::drum_class(n.pitch);
    if (c < 0) continue;
    const int64_t step = static_cast<int64_t>(std::llround(n.start_beat * groove::kStepsPerQuarter));
    const auto it = cells.find({step, c});
    if (it == cells.end()) continue;  // cannot happen: every mapped note has a cell
    const int64_t length = n.duration_ticks();
    const double offset = std::clamp(it->second.first, -0.5, 0.5);
    n.start_tick = std::max<int64_t>(0, std::llround((static_cast<double>(step) + offset) * ticks_per_step));
    n.end_tick = n.start_tick + length;
    n.velocity = static_cast<int>(std::clamp<long long>(std::llround(it->second.second * 127.0), 1, 127));
    moved.emplace_back(i, step);
  }
  // A note ends before the next note of its pitch, channel and track starts,
  // so that note-on/off pairing reads back the same notes.
  std::map<std::tuple<int, int, int>, std::vector<size_t>> voices;
  for (size_t i = 0; i < out.notes.size(); ++i) {
    const midi::Note& n = out.notes[i];
    voices[{n.track, n.channel, n.pitch}].push_back(i);
  }
  for (auto& [voice, indices] : voices) {
    std::stable_sort(indices.begin(), indices.end(),
                     [&](size_t a, size_t b) { return out.notes[a].start_tick < out.notes[b].start_tick; });
    for (size_t k = 0; k + 1 < indices.size(); ++k) {
      midi::Note& n = out.notes[indices[k]];
      n.end_tick = std::max(n.start_tick, std::min(n.end_tick, out.notes[indices[k + 1]].start_tick));
    }
  }
  out.update_times();
  double abs_ms = 0;
  for (const auto& [index, step] : moved) {
    abs_ms += std::abs(out.notes[index].start_s - out.seconds_at(groove::grid_tick(out, step))) * 1000.0;
  }
  st.humanized = static_cast<int64_t>(moved.size());
  st.mean_abs_offset_ms = moved.empty() ? 0.0 : abs_ms / static_cast<double>(moved.size());
  std::stable_sort(out.notes.begin(), out.notes.end(), [](const midi::Note& a, const midi::Note& b) {
    return std::tie(a.start_tick, a.track, a.channel, a.pitch) < std::tie(b.start_tick, b.track, b.channel, b.pitch);
  });
  for (const midi::Note& n : out.notes) out.end_tick = std::max(out.end_tick, n.end_tick);
  return out;
}

}  // namespace kmidi::train
