// The export pipeline (export/ModelExport.h, export/NightlyExport.h) end to
// end on checkpoints of real short training runs of the Groove fixture:
// metadata, parity against an independently loaded network, registry
// entries, the checkpoint choice, and every injected failure leaving the
// previous files as they were.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/BuildInfo.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "core/Strings.h"
#include "datasets/corpus/Prepare.h"
#include "datasets/corpus/PrepareConfig.h"
#include "export/ModelExport.h"
#include "export/NightlyExport.h"
#include "onnx/check/OrtRunner.h"
#include "onnx/check/Parity.h"
#include "onnx/ModelCheck.h"
#include "export/registry/Registry.h"
#include "tests/export/ExportFixture.h"
#include "tests/support/TestSupport.h"
#include "train/Checkpoint.h"
#include "train/Job.h"
#include "train/tasks/Tasks.h"

namespace kmidi::exporter {
namespace {

namespace fs = std::filesystem;

const train::TaskRegistry& tasks() { return test::export_fixture_registry(); }

/// Trains `name` for `steps` steps (resuming when it has checkpoints) and returns the config path.
std::string train_run(const std::string& dir, const std::string& name, const std::string& task, int64_t steps) {
  const std::string config = dir + "/" + name + ".yaml";
  files::write_atomic(config, test::export_job_yaml(dir + "/runs", name, task, steps));
  auto job = train::load_job_config(config, {}, tasks());
  train::run_training(*job, tasks());
  return config;
}

std::unique_ptr<train::JobConfig> job_of(const std::string& config) {
  return train::load_job_config(config, {}, tasks());
}

/// Every file of a folder by name -> bytes.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files[e.path().filename().string()] = files::read_all(e.path().string());
  return files;
}

ExportOptions to(const std::string& out) {
  ExportOptions o;
  o.out_dir = out;
  return o;
}

/// The fixture network with a checkpoint's EMA weights, loaded here without the pipeline.
test::GrooveNet ema_net(const std::string& checkpoint) {
  test::GrooveNet net(32, 0.1);
  train::CheckpointFile f(checkpoint);
  train::NamedTensorList target;
  for (const auto& item : net->named_parameters(true)) target.emplace_back(item.key(), item.value());
  train::load_named_tensors(f.tensors(train::checkpoint_section::kEma), target, checkpoint);
  net->eval();
  return net;
}

/// The last "loss" of `split` rows at or before `step`, read here from metrics.jsonl.
double logged_loss(const std::string& run, const std::string& split, int64_t step) {
  std::ifstream in(run + "/metrics.jsonl");
  double loss = std::nan("");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["split"] == split && j["step"].get<int64_t>() <= step && j.contains("loss")) loss = j["loss"].get<double>();
  }
  return loss;
}

TEST(ExportPipeline, ExportsTheNewestCheckpointWithMetadataParityAndRegistryEntries) {
  const std::string dir = test::scratch_dir("export_e2e");
  const std::string config = train_run(dir, "Groove-Small", "groove_fixture", 8);
  auto job = job_of(config);
  const std::string out = dir + "/out";
  const ModelExportResult r = export_model(*job, tasks(), to(out));

  EXPECT_EQ(r.model, "groove_small");
  EXPECT_EQ(r.step, 8);
  EXPECT_TRUE(r.used_ema);
  EXPECT_EQ(r.checkpoint, dir + "/runs/Groove-Small/checkpoints/step-0000000008.ckpt");
  ASSERT_EQ(r.graphs.size(), 2u);
  EXPECT_EQ(r.graphs[0].file_name, "groove_small.onnx");
  EXPECT_EQ(r.graphs[1].file_name, "groove_small_mirror.onnx");
  EXPECT_EQ(r.graphs[0].parity_runs, 3);
  EXPECT_EQ(snapshot(out).size(), 2u);  // nothing else: no temporaries left

  const onnx::OnnxModelInfo info = onnx::read_model_info(out + "/groove_small.onnx");
  train::CheckpointFile ckpt(r.checkpoint);
  EXPECT_EQ(info.metadata_value("kmidi.format_version").value_or(""), "1");
  EXPECT_EQ(info.metadata_value("kmidi.model_family").value_or(""), "groove_fixture");
  EXPECT_EQ(info.metadata_value("kmidi.config_sha256").value_or(""),
            hash::sha256_hex(ckpt.bytes(train::checkpoint_section::kConfig)));
  EXPECT_EQ(info.metadata_value("kmidi.git_commit").value_or(""), build::git_commit());
  EXPECT_FALSE(std::string(build::git_commit()).empty());
  EXPECT_EQ(info.metadata_value("kmidi.train_step").value_or(""), "8");
  EXPECT_EQ(info.metadata_value("kmidi.features").value_or(""), "bpm/200,is_fill,meter,drummer/10");
  onnx::check_model_file(out + "/groove_small.onnx");

  // onnxruntime on the written file against the EMA network loaded here, on real rows.
  const auto rows = test::read_groove_csv(KMIDI_SHARED_DATA "/groove-midi/groove/info.csv", "test");
  torch::Tensor x = torch::empty({static_cast<int64_t>(rows.size()), 4});
  for (size_t i = 0; i < rows.size(); ++i) {
    x[static_cast<int64_t>(i)] = torch::tensor({rows[i].bpm, rows[i].is_fill, rows[i].meter, rows[i].drummer});
  }
  data::NamedTensors inputs, reference;
  inputs.set("features", x);
  {
    torch::NoGradGuard no_grad;
    reference.set("log_duration", ema_net(r.checkpoint)->forward(x));
  }
  onnx::onnxruntime_parity(out + "/groove_small.onnx", inputs, reference).require_passed("test rows");

  // Registry entries: hashes of the written files, training metadata of the run.
  ASSERT_EQ(r.entries.size(), 2u);
  const registry::RegistryEntry& e = r.entries[0];
  EXPECT_EQ(e.id, "groove_small");
  EXPECT_EQ(e.file, "groove_small.onnx");
  EXPECT_EQ(e.task, "custom");
  EXPECT_EQ(e.status, "trained");
  EXPECT_EQ(e.exports->sha256.value_or(""), hash::sha256_file(out + "/groove_small.onnx"));
  // The ONNX file is the entry's file; the data set is prepare_groove.yaml's `dataset:`.
  EXPECT_EQ(e.exports->onnx_path.value_or(""), "groove_small.onnx");
  EXPECT_EQ(e.exports->onnx_sha256.value_or(""), hash::sha256_file(out + "/groove_small.onnx"));
  EXPECT_EQ(r.entries[1].exports->onnx_path.value_or(""), "groove_small_mirror.onnx");
  ASSERT_TRUE(e.training.has_value());
  EXPECT_EQ(e.training->dataset_id.value_or(""), "groove-midi");
  EXPECT_EQ(e.training->dataset_license.value_or(""), "CC-BY-4.0");
  EXPECT_EQ(e.training->dataset_version.value_or(""), "1.0.0");
  ASSERT_TRUE(e.training.has_value());
  const std::string run = dir + "/runs/Groove-Small";
  EXPECT_EQ(e.training->run_id.value_or(""), "Groove-Small");
  EXPECT_DOUBLE_EQ(e.training->train_loss.value_or(-1), logged_loss(run, "train", 8));
  EXPECT_DOUBLE_EQ(e.training->val_loss.value_or(-1), logged_loss(run, "validation", 8));
  EXPECT_FALSE(e.training->test_loss.has_value());  // no test evaluation ran
  EXPECT_EQ(e.training->git_commit.value_or(""), build::git_commit());
  EXPECT_NE(e.training->hardware.value_or("").find("cpu x 1 process"), std::string::npos);
  EXPECT_EQ(e.training->batch_size.value_or(0), 32);
  EXPECT_EQ(e.training->training_date.value_or("").size(), 20u);  // 2026-11-24T09:00:00Z
  registry::write_registry(out + "/registry.json", r.entries);  // validates against the schema
  EXPECT_EQ(registry::read_registry(out + "/registry.json").size(), 2u);

  const std::string text = describe(r);
  EXPECT_NE(text.find("groove_small_mirror.onnx"), std::string::npos) << text;
}

TEST(ExportPipeline, AJobWhoseDataDeclaresNoDataSetIsRefusedBeforeAnyFile) {
  const std::string dir = test::scratch_dir("export_no_dataset");
  const std::string config = train_run(dir, "job", "groove_fixture", 4);
  std::string yaml = files::read_all(config);
  const size_t at = yaml.find("data: {prepare:");
  ASSERT_NE(at, std::string::npos) << yaml;
  files::write_atomic(config, yaml.substr(0, at));  // the same run, no prepare config named
  try {
    export_model(*job_of(config), tasks(), to(dir + "/out"));
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("job: the registry entry needs the training data's id and licence"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir + "/out/job.onnx"));
}

TEST(ExportPipeline, TrainingDataSetComesFromThePrepareConfigOrThePreparedFolder) {
  // The generator's shipped job names its prepare config.
  auto job = train::load_job_config(test::source_path("configs/midi_generator_tiny.yaml"), {}, train::builtin_tasks());
  std::vector<std::string> looked_at;
  auto found = training_dataset(*job, &looked_at);
  ASSERT_TRUE(found) << strings::join(looked_at, "; ");
  EXPECT_EQ(found->id, "pop909-sample");
  EXPECT_EQ(found->license, "MIT");
  EXPECT_NE(found->source.find("prepare_pop909_sample.yaml"), std::string::npos) << found->source;

  // Prepared shards in data.dir: the report beside them keeps the prepare config.
  const std::string shards = test::scratch_dir("export_dataset_shards");
  corpus::run_prepare(corpus::load_prepare_config(test::source_path("configs/prepare_pop909_sample.yaml"),
                                                  {"output.dir=" + shards}));
  job = train::load_job_config(test::source_path("configs/midi_generator_tiny.yaml"),
                               {"data.prepare=''", "data.dir=" + shards}, train::builtin_tasks());
  found = training_dataset(*job);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, "pop909-sample");
  EXPECT_EQ(found->license, "MIT");
  EXPECT_EQ(found->source, shards + "/prepare_report.json");
}

TEST(ExportPipeline, ADataSetStatedInTheJobComesFirst) {
  // For data that no prepare config made (Groove's info.csv read directly).
  const std::string dir = test::scratch_dir("export_job_dataset");
  const std::string config = dir + "/job.yaml";
  const std::string stated = "data: {dataset: {id: groove-midi-direct, license: CC-BY-4.0, version: 1.0.0}}\n";
  std::string yaml = test::export_job_yaml(dir + "/runs", "job", "groove_fixture", 4);
  files::write_atomic(config, yaml.substr(0, yaml.find("data: {prepare:")) + stated);
  std::optional<TrainingDataset> found = training_dataset(*job_of(config));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, "groove-midi-direct");
  EXPECT_EQ(found->license, "CC-BY-4.0");
  EXPECT_EQ(found->version, "1.0.0");
  EXPECT_EQ(found->source, "the job's data.dataset");
  // Stated beside a prepare config, the job's statement wins.
  files::write_atomic(config, yaml.substr(0, yaml.find("data: {prepare:")) +
                                  "data: {prepare: " + test::source_path("configs/prepare_groove.yaml") +
                                  ", dataset: {id: groove-midi-direct, license: CC-BY-4.0}}\n");
  EXPECT_EQ(training_dataset(*job_of(config)).value_or(TrainingDataset{}).id, "groove-midi-direct");
}

TEST(ExportPipeline, AutoSkipsACorruptNewestCheckpointAndSaysSo) {
  const std::string dir = test::scratch_dir("export_corrupt");
  const std::string config = train_run(dir, "job", "groove_fixture", 8);
  const std::string newest = dir + "/runs/job/checkpoints/step-0000000008.ckpt";
  const std::string bytes = files::read_all(newest);
  files::write_atomic(newest, bytes.substr(0, bytes.size() / 2));
  auto job = job_of(config);
  const ModelExportResult r = export_model(*job, tasks(), to(dir + "/out"));
  EXPECT_EQ(r.step, 4);
  ASSERT_EQ(r.skipped_checkpoints.size(), 1u);
  EXPECT_NE(r.skipped_checkpoints[0].find("step-0000000008.ckpt"), std::string::npos) << r.skipped_checkpoints[0];
  EXPECT_EQ(onnx::read_model_info(dir + "/out/job.onnx").metadata_value("kmidi.train_step").value_or(""), "4");

  // Given explicitly, the corrupt file is refused with its problem.
  ExportOptions o = to(dir + "/out2");
  o.checkpoint = newest;
  try {
    export_model(*job, tasks(), o);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("step-0000000008.ckpt"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir + "/out2/job.onnx"));
}

struct FaultCase {
  test::ExportFault fault;
  const char* message;  ///< substring of the CheckFailed message
};

std::string fault_name(test::ExportFault fault) {
  static const char* const kNames[] = {"none", "emit", "checker", "parity", "extra_check", "registry"};
  return kNames[static_cast<int>(fault)];
}

class ExportFaults : public ::testing::TestWithParam<FaultCase> {};

TEST_P(ExportFaults, LeaveNoFileAndKeepThePreviousOnes) {
  const std::string dir = test::scratch_dir("export_fault");
  const std::string config = train_run(dir, "job", "groove_fixture_b", 4);
  const std::string out = dir + "/out", fresh = dir + "/fresh";
  test::fault_of_b() = test::ExportFault::kNone;
  export_model(*job_of(config), tasks(), to(out));
  const auto before = snapshot(out);
  ASSERT_EQ(before.size(), 2u);

  train_run(dir, "job", "groove_fixture_b", 8);  // newer weights: a successful export would change both files
  test::fault_of_b() = GetParam().fault;
  for (const std::string& target : {out, fresh}) {
    try {
      export_model(*job_of(config), tasks(), to(target));
      ADD_FAILURE() << "expected CheckFailed";
    } catch (const CheckFailed& e) {
      EXPECT_NE(std::string(e.what()).find(GetParam().message), std::string::npos) << e.what();
    }
  }
  test::fault_of_b() = test::ExportFault::kNone;
  EXPECT_EQ(snapshot(out), before);  // same names, same bytes: no temporaries, no new file
  EXPECT_TRUE(!fs::exists(fresh) || fs::is_empty(fresh));

  const ModelExportResult r = export_model(*job_of(config), tasks(), to(out));  // and the fixed task exports
  EXPECT_EQ(r.step, 8);
  EXPECT_NE(snapshot(out), before);
}

INSTANTIATE_TEST_SUITE_P(
    Injected, ExportFaults,
    ::testing::Values(FaultCase{test::ExportFault::kEmitThrows, "job: graph 'job_mirror': emit: emit exploded"},
                      FaultCase{test::ExportFault::kCheckerFails, "shape inference"},
                      FaultCase{test::ExportFault::kPerturbedReference,
                                "job: graph 'job_mirror': onnxruntime parity at batch 1, length 0: parity FAILED"},
                      FaultCase{test::ExportFault::kExtraCheckFails,
                                "extra check of graph 'job_mirror': the mirror disagrees with the main graph"},
                      FaultCase{test::ExportFault::kRegistryOutOfRange, "input_size"}),
    [](const auto& info) { return fault_name(info.param.fault); });

/// Runs tests/export/export_child with KMIDI_FAULT=`fault`; returns its exit code.
int run_child(const std::string& fault, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"env", "KMIDI_FAULT=" + fault, KMIDI_BINARY_DIR "/tests/export/export_child"};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::run(argv).exit_code;
}

TEST(ExportPipeline, AProcessKilledWhileWritingLeavesThePreviousFiles) {
  const std::string dir = test::scratch_dir("export_kill");
  const std::string config = train_run(dir, "job", "groove_fixture", 4);
  const std::string out = dir + "/out";
  ASSERT_EQ(run_child("", {"one", config, out}), 0);
  const auto before = snapshot(out);
  train_run(dir, "job", "groove_fixture", 8);

  // Killed (SIGKILL: 128 + 9) right after a candidate was written, and after
  // every check passed just before the first rename.
  for (const std::string& fault : {"onnx_write_candidate:job_mirror.onnx", "onnx_write_checked:job.onnx",
                                   "atomic_write:.job_mirror.onnx.partial."}) {
    EXPECT_EQ(run_child(fault, {"one", config, out}), 137) << fault;
    std::set<std::string> names;
    for (const auto& [name, bytes] : snapshot(out)) {
      if (name.find(".partial.") == std::string::npos) names.insert(name);
    }
    EXPECT_EQ(names, (std::set<std::string>{"job.onnx", "job_mirror.onnx"})) << fault;
    EXPECT_EQ(files::read_all(out + "/job.onnx"), before.at("job.onnx")) << fault;
    EXPECT_EQ(files::read_all(out + "/job_mirror.onnx"), before.at("job_mirror.onnx")) << fault;
  }
  // The next run removes what the killed ones left and publishes.
  ASSERT_EQ(run_child("", {"one", config, out}), 0);
  const auto after = snapshot(out);
  EXPECT_EQ(after.size(), 2u);
  EXPECT_NE(after.at("job.onnx"), before.at("job.onnx"));
  EXPECT_EQ(onnx::read_model_info(out + "/job.onnx").metadata_value("kmidi.train_step").value_or(""), "8");
}

TEST(NightlyExport, OneFailingModelKeepsYesterdaysFilesAndEntryAndFailsTheRun) {
  const std::string dir = test::scratch_dir("nightly");
  const std::string a = train_run(dir, "alpha", "groove_fixture", 4);
  const std::string b = train_run(dir, "beta", "groove_fixture_b", 4);
  files::write_atomic(dir + "/prepare.yaml", "corpus: {}\n");  // not a model config: skipped
  const std::vector<std::string> configs = find_model_configs({dir});
  EXPECT_EQ(configs, (std::vector<std::string>{a, b}));
  const std::string out = dir + "/published";
  NightlyOptions options;
  options.out_dir = out;

  // Night 1: both export.
  test::fault_of_b() = test::ExportFault::kNone;
  const NightlyResult night1 = export_all(configs, tasks(), options);
  ASSERT_TRUE(night1.all_ok()) << summary_table(night1);
  const auto entries1 = registry::read_registry(out + "/registry.json");
  ASSERT_EQ(entries1.size(), 4u);
  const auto files1 = snapshot(out);

  // Night 2: both trained further; beta's parity fails.
  train_run(dir, "alpha", "groove_fixture", 8);
  train_run(dir, "beta", "groove_fixture_b", 8);
  test::fault_of_b() = test::ExportFault::kPerturbedReference;
  const NightlyResult night2 = export_all(configs, tasks(), options);
  test::fault_of_b() = test::ExportFault::kNone;
  EXPECT_FALSE(night2.all_ok());
  EXPECT_TRUE(night2.registry_written) << night2.registry_error;
  ASSERT_EQ(night2.models.size(), 2u);
  EXPECT_TRUE(night2.models[0].ok) << night2.models[0].error;
  EXPECT_FALSE(night2.models[1].ok);
  EXPECT_NE(night2.models[1].error.find("check failed: beta: graph 'beta_mirror': onnxruntime parity"),
            std::string::npos)
      << night2.models[1].error;
  const std::string table = summary_table(night2);
  EXPECT_NE(table.find("FAILED"), std::string::npos) << table;
  EXPECT_NE(table.find("1 of 2 models exported"), std::string::npos) << table;

  const auto files2 = snapshot(out);
  EXPECT_NE(files2.at("alpha.onnx"), files1.at("alpha.onnx"));
  EXPECT_EQ(files2.at("beta.onnx"), files1.at("beta.onnx"));
  EXPECT_EQ(files2.at("beta_mirror.onnx"), files1.at("beta_mirror.onnx"));
  const auto entries2 = registry::read_registry(out + "/registry.json");  // validates: hashes match the files
  ASSERT_EQ(entries2.size(), 4u);
  std::map<std::string, std::string> json1, json2;
  for (const auto& e : entries1) json1[e.id] = registry::to_json({e});
  for (const auto& e : entries2) json2[e.id] = registry::to_json({e});
  EXPECT_EQ(json2.at("beta"), json1.at("beta"));  // yesterday's entry, unchanged
  EXPECT_NE(json2.at("alpha"), json1.at("alpha"));
  EXPECT_EQ(entries2[0].id, "alpha");
  EXPECT_EQ(entries2[0].exports->sha256.value_or(""), hash::sha256_file(out + "/alpha.onnx"));
}

TEST(NightlyExport, AMalformedPreviousManifestStopsTheRunBeforeAnyExport) {
  const std::string dir = test::scratch_dir("nightly_malformed");
  const std::string a = train_run(dir, "alpha", "groove_fixture", 4);
  const std::string out = dir + "/published";
  NightlyOptions options;
  options.out_dir = out;
  for (const std::string& manifest :
       {std::string(R"({"models": [{"id": "Alpha", "file": "alpha.onnx"}]})"), std::string("{\"models\": ["),
        std::string(R"({"models": [], "extra": 1})")}) {
    files::write_atomic(out + "/registry.json", manifest);
    try {
      export_all({a}, tasks(), options);
      ADD_FAILURE() << "expected CheckFailed for " << manifest;
    } catch (const CheckFailed& e) {
      EXPECT_NE(std::string(e.what()).find("the previous manifest does not validate"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(out + "/alpha.onnx"));
    EXPECT_EQ(files::read_all(out + "/registry.json"), manifest);
  }
}

TEST(NightlyExport, AKilledRegistryWriteKeepsThePreviousManifest) {
  const std::string dir = test::scratch_dir("nightly_kill");
  const std::string a = train_run(dir, "alpha", "groove_fixture", 4);
  const std::string out = dir + "/published";
  ASSERT_EQ(run_child("", {"all", out, a}), 0);
  const std::string manifest = files::read_all(out + "/registry.json");
  train_run(dir, "alpha", "groove_fixture", 8);
  EXPECT_EQ(run_child("atomic_write:registry.json", {"all", out, a}), 137);
  EXPECT_EQ(files::read_all(out + "/registry.json"), manifest);
  // The files were published before the kill, so yesterday's manifest no
  // longer matches them; the next run replaces those entries and validates.
  EXPECT_THROW(registry::validate_manifest(out + "/registry.json"), CheckFailed);
  ASSERT_EQ(run_child("", {"all", out, a}), 0);
  registry::validate_manifest(out + "/registry.json");
  EXPECT_EQ(registry::read_registry(out + "/registry.json")[0].exports->sha256.value_or(""),
            hash::sha256_file(out + "/alpha.onnx"));
}

TEST(NightlyExport, APreviousEntryWhoseFileChangedIsDroppedNotCarriedOver) {
  const std::string dir = test::scratch_dir("nightly_dropped");
  const std::string a = train_run(dir, "alpha", "groove_fixture", 4);
  const std::string b = train_run(dir, "beta", "groove_fixture_b", 4);
  const std::string out = dir + "/published";
  NightlyOptions options;
  options.out_dir = out;
  test::fault_of_b() = test::ExportFault::kNone;
  ASSERT_TRUE(export_all({a, b}, tasks(), options).all_ok());
  files::write_atomic(out + "/beta_mirror.onnx", "replaced by hand");
  test::fault_of_b() = test::ExportFault::kEmitThrows;
  const NightlyResult r = export_all({a, b}, tasks(), options);
  test::fault_of_b() = test::ExportFault::kNone;
  EXPECT_TRUE(r.registry_written) << r.registry_error;
  ASSERT_EQ(r.dropped_entries.size(), 1u);
  EXPECT_EQ(r.dropped_entries[0], "beta_mirror: its file beta_mirror.onnx changed since the entry was written");
  std::set<std::string> ids;
  for (const auto& e : registry::read_registry(out + "/registry.json")) ids.insert(e.id);
  EXPECT_EQ(ids, (std::set<std::string>{"alpha", "alpha_mirror", "beta"}));
}

}  // namespace
}  // namespace kmidi::exporter
