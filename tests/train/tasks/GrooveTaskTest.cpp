// The groove task: metrics against hand-computed values, the train split's
// velocity baseline against the mido reference, loss-config errors, a short
// real run with labelled and label-free evaluation, and its ONNX graph
// against onnxruntime.

#include "train/tasks/GrooveTask.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/Csv.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "export/ModelExport.h"
#include "onnx/check/Parity.h"
#include "onnx/Metadata.h"
#include "onnx/ModelCheck.h"
#include "tests/support/TestSupport.h"
#include "tests/train/GraphFile.h"
#include "train/Job.h"
#include "train/tasks/Tasks.h"
#include "train/tasks/GrooveHumanize.h"

namespace kmidi::train {
namespace {

namespace fs = std::filesystem;

GrooveTaskConfig tiny_config(int64_t max_files) {
  GrooveTaskConfig c;
  c.data.csv = test::shared_data("groove-midi/groove/info.csv");
  c.data.max_files = max_files;
  c.model.d_model = 32;
  c.model.n_layers = 1;
  c.model.n_heads = 2;
  c.model.d_ff = 64;
  c.model.dropout = 0.0;
  c.model.players = {"drummer1", "drummer7"};
  c.loss = default_groove_loss();
  return c;
}

std::vector<nlohmann::json> jsonl(const std::string& path) {
  std::istringstream in(files::read_all(path));
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

TEST(GrooveTask, BaselineVelocitiesAreTheTrainSplitsClassMeans) {
  torch::manual_seed(1);
  GrooveTask task(tiny_config(1), TaskContext{});
  // The first train performance of info.csv, read by mido (tests/reference/groove_grid.py).
  const auto rows = csv::read(test::shared_data("groove-midi/groove/info.csv"));
  std::string first;
  for (const auto& row : rows.rows) {
    if (row[rows.column("split")] == "train" && row[rows.column("time_signature")] == "4-4") {
      first = row[rows.column("midi_filename")];
      break;
    }
  }
  const auto ref = test::run({test::python(), test::source_path("tests/reference/groove_grid.py"),
                              test::shared_data("groove-midi/groove/" + first)});
  ASSERT_EQ(ref.exit_code, 0);
  std::array<double, groove::kDrumClasses> sum{}, count{};
  std::istringstream lines(ref.output);
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    sum[j["class"].get<size_t>()] += j["velocity"].get<double>();
    count[j["class"].get<size_t>()] += 1;
  }
  for (size_t c = 0; c < groove::kDrumClasses; ++c) {
    EXPECT_NEAR(task.baseline_velocities()[c], count[c] > 0 ? sum[c] / count[c] : 0.0, 1e-9) << c;
  }
}

TEST(GrooveTask, MetricsMatchHandComputedValues) {
  torch::manual_seed(2);
  GrooveTask task(tiny_config(1), TaskContext{});
  // Constant outputs: offsets 0.1 step everywhere, velocities 0.5 (63.5 in MIDI units).
  {
    torch::NoGradGuard no_grad;
    auto net = task.module()->net;
    net->offset_head->weight.zero_();
    net->offset_head->bias.fill_(std::atanh(0.2));
    net->velocity_head->weight.zero_();
    net->velocity_head->bias.fill_(0.0);
  }
  task.model().eval();
  groove::GrooveItem a, b;
  a.source = "a";
  a.bpm = 100.0;  // 150 ms per step
  a.hits = {groove::Hit{0, 0, 0.25, 0, 127, 0}, groove::Hit{3, 2, -0.1, 0, 64, 1}};
  b.source = "b";
  b.bpm = 200.0;  // 75 ms per step
  b.hits = {groove::Hit{5, 1, -0.5, 0, 90, 2}};
  const groove::GrooveDataset data({a, b}, 32, true);
  const data::Batch batch = data.get_batch({0, 1});
  torch::NoGradGuard no_grad;
  const ForwardOutput out = task.forward(batch, false);
  // L1 per hit: offsets 0.15, 0.2, 0.6 (steps); velocities 63.5, 0.5, 26.5 (/127).
  EXPECT_NEAR(out.loss_sum.item<double>(), 0.95 + 90.5 / 127.0, 1e-5);
  MetricValues sums;
  sums["loss_sum"] = out.loss_sum.item<double>();
  sums["units"] = static_cast<double>(batch.units);
  for (const auto& [name, value] : out.sums) sums[name] = value.item<double>();
  const MetricValues m = task.finalize(sums, Split::kTest);
  const auto& bv = task.baseline_velocities();
  EXPECT_NEAR(m.at("timing_mae_ms"), (0.15 * 150 + 0.2 * 150 + 0.6 * 75) / 3, 1e-3);
  EXPECT_NEAR(m.at("timing_baseline_ms"), (0.25 * 150 + 0.1 * 150 + 0.5 * 75) / 3, 1e-3);
  EXPECT_NEAR(m.at("timing_mae_steps"), 0.95 / 3, 1e-5);
  EXPECT_NEAR(m.at("velocity_mae"), 90.5 / 3, 1e-3);
  EXPECT_NEAR(m.at("velocity_baseline"), (std::abs(bv[0] - 127) + std::abs(bv[2] - 64) + std::abs(bv[1] - 90)) / 3, 1e-3);
  EXPECT_NEAR(m.at("timing_ratio"), 97.5 / 90.0, 1e-4);
  EXPECT_NEAR(m.at("loss"), (0.95 + 90.5 / 127.0) / 3, 1e-5);
  // predict(): ms at each window's tempo, MIDI velocities, zeros where no hit is.
  const data::NamedTensors p = task.predict(batch);
  EXPECT_NEAR(p.at("offsets_ms")[0][3][2].item<double>(), 15.0, 1e-3);
  EXPECT_NEAR(p.at("offsets_ms")[1][5][1].item<double>(), 7.5, 1e-3);
  EXPECT_EQ(p.at("velocities")[0][0][0].item<double>(), 64.0);  // round(63.5)
  EXPECT_EQ(p.at("velocities")[0][1][0].item<double>(), 0.0);
  EXPECT_EQ(p.at("hits").sum().item<double>(), 3.0);
}

TEST(GrooveTask, LossHeadsMustBeMaskedModelOutputs) {
  const std::string dir = test::scratch_dir("groove_loss_config");
  const std::string base = "task: groove\nrun: {name: x}\ntrain: {max_steps: 1}\n";
  files::write_atomic(dir + "/unmasked.yaml",
                      base + "loss: {heads: [{name: offsets, task: regression, loss: l1}]}\n");
  try {
    load_job_config(dir + "/unmasked.yaml", {}, builtin_tasks());
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("head 'offsets' needs `mask: mask`"), std::string::npos) << e.what();
  }
  files::write_atomic(dir + "/unknown.yaml",
                      base + "loss: {heads: [{name: style, task: regression, mask: mask}]}\n");
  try {
    load_job_config(dir + "/unknown.yaml", {}, builtin_tasks());
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("the groove model's outputs are offsets and velocities"), std::string::npos)
        << e.what();
  }
  files::write_atomic(dir + "/meter.yaml", base + "data: {time_signatures: []}\n");
  try {
    load_job_config(dir + "/meter.yaml", {}, builtin_tasks());
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("needs at least one time signature"), std::string::npos) << e.what();
  }
  // A classification head on velocities: the targets do not fit (checked on the first batch).
  GrooveTaskConfig c = tiny_config(1);
  c.loss.heads[1].task = "classification";
  c.loss.heads[1].loss = "cross_entropy";
  c.loss.heads[1].num_classes = 128;
  GrooveTask task(c, TaskContext{});
  const data::Batch batch = task.dataset(Split::kTrain)->get_batch({0});
  try {
    task.forward(batch, true);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("head 'velocities' (classification, cross_entropy): needs integer class ids"),
              std::string::npos)
        << e.what();
  }
}

TEST(GrooveTask, ShortRunWritesACheckpointAndEvaluatesWithAndWithoutLabels) {
  const std::string dir = test::scratch_dir("groove_run");
  const std::string config = test::source_path("configs/groove_tiny.yaml");
  const std::vector<std::string> overrides = {"data_root=" + std::string(KMIDI_SHARED_DATA),
                                              "run.output_dir=" + dir + "/runs", "data.cache_dir=" + dir + "/cache"};
  auto job = load_job_config(config, overrides, builtin_tasks());
  const TrainResult result = run_training(*job, builtin_tasks());
  EXPECT_EQ(result.step, 12);
  const std::string ckpt = dir + "/runs/groove-tiny/checkpoints/step-0000000012.ckpt";
  ASSERT_TRUE(fs::exists(ckpt));
  EXPECT_TRUE(fs::exists(dir + "/runs/groove-tiny/checkpoints/groove.json"));
  EXPECT_FALSE(fs::is_empty(dir + "/cache"));
  bool validated = false;
  for (const auto& row : jsonl(dir + "/runs/groove-tiny/metrics.jsonl")) {
    if (row.value("split", "") == "validation") {
      validated = true;
      EXPECT_GT(row["timing_baseline_ms"].get<double>(), 0.0);
      EXPECT_GT(row["velocity_baseline"].get<double>(), 0.0);
    }
  }
  EXPECT_TRUE(validated);

  EvaluateOptions options;
  options.checkpoint = ckpt;
  options.split = "test";
  const EvaluateOutcome labelled = run_evaluation(*job, builtin_tasks(), options);
  ASSERT_TRUE(labelled.result.labelled);
  const MetricValues& m = labelled.result.metrics;
  EXPECT_NEAR(m.at("timing_ratio"), m.at("timing_mae_ms") / m.at("timing_baseline_ms"), 1e-9);
  EXPECT_NEAR(m.at("velocity_ratio"), m.at("velocity_mae") / m.at("velocity_baseline"), 1e-9);
  EXPECT_GT(m.at("velocity_mae"), 0.0);

  auto unlabelled_overrides = overrides;
  unlabelled_overrides.push_back("data.test_labels=false");
  auto unlabelled_job = load_job_config(config, unlabelled_overrides, builtin_tasks());
  const EvaluateOutcome unlabelled = run_evaluation(*unlabelled_job, builtin_tasks(), options);
  EXPECT_FALSE(unlabelled.result.labelled);
  EXPECT_TRUE(unlabelled.result.metrics.empty());
  ASSERT_FALSE(unlabelled.predictions_path.empty());
  const auto rows = jsonl(unlabelled.predictions_path);
  EXPECT_EQ(static_cast<int64_t>(rows.size()), labelled.result.items);
  ASSERT_FALSE(rows.empty());
  for (const char* key : {"id", "offsets", "offsets_ms", "velocities", "hits"}) EXPECT_TRUE(rows[0].contains(key)) << key;
  EXPECT_EQ(rows[0]["offsets"].size(), 32u);
  EXPECT_EQ(rows[0]["offsets"][0].size(), 9u);
}

TEST(GrooveTask, GraphsMatchOnnxRuntimeAtEveryParityShape) {
  torch::manual_seed(3);
  GrooveTask task(tiny_config(1), TaskContext{});
  auto graphs = task.graphs();
  ASSERT_EQ(graphs.size(), 1u);
  const GraphExport& g = graphs[0];
  EXPECT_EQ(g.registry_task, "groove_prediction");
  EXPECT_EQ(g.registry_input_size, 9);
  EXPECT_EQ(g.registry_output_size, 18);
  const std::string path = test::scratch_dir("groove_graphs") + "/groove.onnx";
  test::write_checked_graph(g, path);
  const onnx::OnnxModelInfo info = onnx::read_model_info(path);
  EXPECT_EQ(info.output_names(), (std::vector<std::string>{"offsets", "velocities"}));
  EXPECT_EQ(info.input_names(), (std::vector<std::string>{"hits", "tempo", "player"}));
  EXPECT_EQ(info.metadata_value("kmidi.groove.players").value_or(""), "drummer1,drummer7");
  ASSERT_GE(g.parity_shapes.size(), 3u);
  task.model().train();  // reference() must evaluate in eval mode and leave the mode as it was
  for (const auto& [batch, length] : g.parity_shapes) {
    const data::NamedTensors inputs = g.sample_inputs(batch, length, 42);
    EXPECT_EQ(inputs.at("hits").sizes(), (std::vector<int64_t>{batch, length, 9}));
    EXPECT_EQ(inputs.at("player").sizes(), (std::vector<int64_t>{batch}));
    onnx::onnxruntime_parity(path, inputs, g.reference(inputs))
        .require_passed("groove " + std::to_string(batch) + "x" + std::to_string(length));
  }
  EXPECT_TRUE(task.model().is_training());
}

TEST(GrooveTask, TrainingDrummerOutsideModelPlayersIsAnError) {
  GrooveTaskConfig c = tiny_config(1);
  c.model.players = {"drummer7"};  // the first train performance is drummer1's
  try {
    GrooveTask task(c, TaskContext{});
    FAIL() << "no error";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("(train split)"), std::string::npos) << what;
    EXPECT_NE(what.find("player 'drummer1' is not one the model knows (drummer7)"), std::string::npos) << what;
    EXPECT_NE(what.find("model.players"), std::string::npos) << what;
  }
  c.data.condition_on_player = false;  // every window as "any player": no error, player input all 0
  GrooveTask task(c, TaskContext{});
  const data::Batch batch = task.dataset(Split::kTrain)->get_batch({0, 1});
  EXPECT_TRUE(torch::equal(batch.inputs.at("player"), torch::zeros({2}, torch::kLong)));
}

TEST(GrooveTask, PlayerListMustNotRepeatOrHoldEmptyNames) {
  const std::string dir = test::scratch_dir("groove_players_config");
  files::write_atomic(dir + "/twice.yaml", "task: groove\nrun: {name: x}\ntrain: {max_steps: 1}\nmodel: {players: [drummer1, drummer1]}\n");
  try {
    load_job_config(dir + "/twice.yaml", {}, builtin_tasks());
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'drummer1' is listed twice"), std::string::npos) << e.what();
  }
  files::write_atomic(dir + "/empty.yaml", "task: groove\nrun: {name: x}\ntrain: {max_steps: 1}\nmodel: {players: [drummer1, '']}\n");
  try {
    load_job_config(dir + "/empty.yaml", {}, builtin_tasks());
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("players: entry 1 is empty"), std::string::npos) << e.what();
  }
}

TEST(GrooveHumanize, PlayerIdsComeFromTheCheckpointsList) {
  GrooveCheckpoint ckpt;
  ckpt.players = {"drummer1", "drummer7"};
  EXPECT_EQ(player_id(ckpt, ""), 0);
  EXPECT_EQ(player_id(ckpt, "drummer1"), 1);
  EXPECT_EQ(player_id(ckpt, "drummer7"), 2);
  try {
    player_id(ckpt, "drummer3");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("player 'drummer3' is not one the model was trained on (known: drummer1, "
                                         "drummer7)"),
              std::string::npos)
        << e.what();
  }
  ckpt.players.clear();
  EXPECT_THROW(player_id(ckpt, "drummer1"), UsageError);
}

TEST(GrooveHumanize, MovesDrumNotesByThePredictedOffsetAndKeepsEveryNote) {
  torch::manual_seed(4);
  models::GrooveModelOptions o = tiny_config(1).model.options();
  models::GrooveModel model(o);
  {
    // Constant outputs: +0.25 step, velocity 0.5 (64 after rounding 63.5 half away from zero).
    torch::NoGradGuard no_grad;
    model->offset_head->weight.zero_();
    model->offset_head->bias.fill_(std::atanh(0.5));
    model->velocity_head->weight.zero_();
    model->velocity_head->bias.fill_(0.0);
  }
  model->eval();
  midi::Score s;
  s.division.ticks_per_quarter = 480;  // 120 ticks per step
  auto note = [&](int channel, int pitch, int64_t tick, int64_t length) {
    midi::Note n;
    n.channel = channel;
    n.pitch = pitch;
    n.velocity = 100;
    n.start_tick = tick;
    n.end_tick = tick + length;
    s.notes.push_back(n);
  };
  note(9, 36, 0, 260);     // kick on step 0, long enough to reach the next kick
  note(9, 36, 240, 60);    // kick on step 2
  note(9, 42, 125, 30);    // hi-hat 5 ticks after step 1
  note(9, 21, 480, 30);    // unmapped drum pitch: untouched
  note(0, 60, 0, 480);     // piano: untouched
  s.end_tick = 960;
  s.update_times();
  train::HumanizeStats stats;
  const midi::Score h = train::humanize(s, *model, 32, &stats);
  ASSERT_EQ(h.notes.size(), 5u);
  EXPECT_EQ(stats.humanized, 3);
  EXPECT_EQ(stats.windows, 1);
  auto find = [&](int channel, int pitch, int64_t from) -> const midi::Note& {
    for (const midi::Note& n : h.notes) {
      if (n.channel == channel && n.pitch == pitch && n.start_tick >= from) return n;
    }
    throw std::runtime_error("note not found");
  };
  // Grid time + 0.25 step (30 ticks); the first kick ends where the second starts.
  EXPECT_EQ(find(9, 36, 0).start_tick, 30);
  EXPECT_EQ(find(9, 36, 0).end_tick, 270);
  EXPECT_EQ(find(9, 36, 100).start_tick, 270);
  EXPECT_EQ(find(9, 36, 100).end_tick, 330);
  EXPECT_EQ(find(9, 42, 0).start_tick, 150);
  EXPECT_EQ(find(9, 42, 0).end_tick, 180);
  EXPECT_EQ(find(9, 42, 0).velocity, 64);
  EXPECT_EQ(find(9, 21, 0).start_tick, 480);
  EXPECT_EQ(find(9, 21, 0).velocity, 100);
  EXPECT_EQ(find(0, 60, 0).start_tick, 0);
  EXPECT_EQ(find(0, 60, 0).velocity, 100);
  EXPECT_NEAR(find(9, 42, 0).start_s, 150.0 / 480.0 * 0.5, 1e-12);  // 120 bpm
  EXPECT_NEAR(stats.mean_abs_offset_ms, 31.25, 1e-9);  // a quarter of a 125 ms step (120 bpm)

  // A player's embedding shifts the offsets: player 1's row moves the
  // offset head's input, player 0 (any player) keeps the result above.
  {
    torch::NoGradGuard no_grad;
    model->offset_head->weight.fill_(0.0);
    // The kick's offset reads the hidden state (not a constant row: a
    // layer-normed state sums to zero).
    model->offset_head->weight[0].copy_(torch::linspace(-1.0, 1.0, model->offset_head->weight.size(1)));
  }
  const midi::Score any = train::humanize(s, *model, 32, nullptr, 0);
  {
    torch::NoGradGuard no_grad;
    // Not a constant row: layer norms would remove a uniform shift.
    model->player_embedding->weight[1].copy_(torch::linspace(-3.0, 3.0, model->player_embedding->weight.size(1)));
  }
  const midi::Score drummer = train::humanize(s, *model, 32, nullptr, 1);
  EXPECT_EQ(train::humanize(s, *model, 32, nullptr, 0).notes[0].start_tick, any.notes[0].start_tick);
  bool differs = false;
  for (size_t i = 0; i < any.notes.size(); ++i) differs |= any.notes[i].start_tick != drummer.notes[i].start_tick;
  EXPECT_TRUE(differs);
  EXPECT_THROW(train::humanize(s, *model, 32, nullptr, 3), UsageError);  // 2 players: ids 0..2

  midi::Score smpte = s;
  smpte.division.smpte = true;
  smpte.division.frames_per_second = 25;
  smpte.division.ticks_per_frame = 40;
  try {
    train::humanize(smpte, *model, 32);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("SMPTE-timed"), std::string::npos) << e.what();
  }
}

TEST(GrooveTask, ShippedJobsExportWithTheGrooveMidiDataSet) {
  // No prepare config made this data (the task reads info.csv): the shipped
  // jobs state the data set, as groove-midi/groove/LICENSE grants it.
  EXPECT_NE(files::read_all(test::shared_data("groove-midi/groove/LICENSE"))
                .find("licensed under the Creative Commons Attribution 4.0 International License"),
            std::string::npos);
  const std::string dir = test::scratch_dir("groove_export");
  const std::vector<std::string> overrides = {"data_root=" + std::string(KMIDI_SHARED_DATA),
                                              "run.output_dir=" + dir + "/runs"};
  for (const char* config : {"configs/groove.yaml", "configs/groove_tiny.yaml"}) {
    auto job = load_job_config(test::source_path(config), overrides, builtin_tasks());
    const std::optional<exporter::TrainingDataset> found = exporter::training_dataset(*job);
    ASSERT_TRUE(found) << config;
    EXPECT_EQ(found->id, "groove-midi") << config;
    EXPECT_EQ(found->license, "CC-BY-4.0") << config;
    EXPECT_EQ(found->version, "1.0.0") << config;
    EXPECT_EQ(found->source, "the job's data.dataset") << config;
  }
  // The tiny job end to end: trained, then exported with its registry entry.
  auto job = load_job_config(test::source_path("configs/groove_tiny.yaml"), overrides, builtin_tasks());
  run_training(*job, builtin_tasks());
  exporter::ExportOptions options;
  options.out_dir = dir + "/out";
  const exporter::ModelExportResult result = exporter::export_model(*job, builtin_tasks(), options);
  ASSERT_FALSE(result.entries.empty());
  for (const auto& entry : result.entries) {
    ASSERT_TRUE(entry.training.has_value());
    EXPECT_EQ(entry.training->dataset_id.value_or(""), "groove-midi");
    EXPECT_EQ(entry.training->dataset_license.value_or(""), "CC-BY-4.0");
    EXPECT_EQ(entry.training->dataset_version.value_or(""), "1.0.0");
  }
}

}  // namespace
}  // namespace kmidi::train
