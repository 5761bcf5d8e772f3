// registry.json: a valid manifest passes and round-trips; every kind of
// malformed manifest is refused with the entry, the JSON pointer and the reason.

#include "export/registry/Registry.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/Errors.h"
#include "core/Files.h"
#include "tests/support/TestSupport.h"

namespace kmidi::registry {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// FIPS 180-2 test vector: SHA-256("abc").
constexpr const char* kAbcSha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

class Registry : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir(std::string("registry_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "models");
    files::write_atomic((dir_ / "models" / "emotion.onnx").string(), "abc");
    files::write_atomic((dir_ / "models" / "groove.json").string(), "{\"layers\": []}");
    files::write_atomic((dir_ / "models" / "groove.onnx").string(), "abc");
    files::write_atomic((dir_ / "models" / "emotion.md").string(), "# Emotion model\n");
  }

  /// A valid manifest: one full entry, one minimal.
  json valid() const {
    return json::parse(R"({"models": [
      {"id": "emotion", "file": "models/emotion.onnx", "format": "onnx", "task": "emotion_embedding",
       "input_size": 128, "output_size": 64, "status": "trained",
       "training": {"dataset_id": "pop909", "dataset_version": "1", "dataset_license": "MIT", "epochs": 3,
                    "batch_size": 32, "learning_rate": 0.0003, "optimizer": "adamw", "loss": "mse",
                    "train_loss": 0.12, "val_loss": 0.15, "test_loss": 0.16, "run_id": "r1", "git_commit": "865d7ca",
                    "training_date": "2024-05-01T03:12:00Z", "hardware": "cpu", "duration_seconds": 42.5},
       "exports": {"sha256": ")" + std::string(kAbcSha256) + R"(", "onnx_path": "models/emotion.onnx"},
       "model_card": "models/emotion.md", "license": "MIT"},
      {"id": "groove_1", "file": "models/groove.json", "format": "rtneural-json", "task": "groove_prediction",
       "input_size": 64, "output_size": 32, "status": "stub",
       "exports": {"onnx_path": "models/groove.onnx", "onnx_sha256": ")" + std::string(kAbcSha256) + R"("}}
    ]})");
  }

  /// The CheckFailed message of validating `manifest`, or "(valid)".
  std::string error_of(const json& manifest) const {
    try {
      validate_manifest_text(manifest.dump(), dir_.string(), "registry.json");
    } catch (const CheckFailed& e) {
      return e.what();
    }
    return "(valid)";
  }

  fs::path dir_;
};

#define EXPECT_CONTAINS(text, part)                                   \
  do {                                                                \
    const std::string t_ = (text);                                    \
    EXPECT_NE(t_.find(part), std::string::npos) << "message: " << t_; \
  } while (0)

TEST_F(Registry, ValidManifestPassesAndRoundTrips) {
  EXPECT_EQ(error_of(valid()), "(valid)");
  EXPECT_EQ(error_of(json::parse(R"({"models": []})")), "(valid)");
  const std::string path = (dir_ / "registry.json").string();
  files::write_atomic(path, valid().dump(2));
  EXPECT_NO_THROW(validate_manifest(path));
  const std::vector<RegistryEntry> entries = read_registry(path);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].id, "emotion");
  EXPECT_EQ(entries[0].input_size, 128);
  ASSERT_TRUE(entries[0].training.has_value());
  EXPECT_EQ(entries[0].training->epochs, 3);
  EXPECT_DOUBLE_EQ(*entries[0].training->learning_rate, 0.0003);
  EXPECT_EQ(entries[0].exports->sha256, std::optional<std::string>(kAbcSha256));
  EXPECT_EQ(entries[1].exports->onnx_path, std::optional<std::string>("models/groove.onnx"));
  EXPECT_FALSE(entries[1].training.has_value());
  // Writing the entries back gives the same JSON (as values), fields in CONTRACTS.md's order.
  EXPECT_EQ(json::parse(to_json(entries)), valid());
  const std::string text = to_json(entries);
  EXPECT_LT(text.find("\"id\""), text.find("\"file\""));
  EXPECT_LT(text.find("\"output_size\""), text.find("\"status\""));
}

TEST_F(Registry, MissingRequiredField) {
  json m = valid();
  m["models"][0].erase("status");
  EXPECT_CONTAINS(error_of(m), "registry.json: models[0] (id \"emotion\") at /models/0: missing required field \"status\"");
}

TEST_F(Registry, BadIdPattern) {
  json m = valid();
  m["models"][1]["id"] = "Groove-1";
  EXPECT_CONTAINS(error_of(m),
                  "models[1] (id \"Groove-1\") at /models/1/id: \"Groove-1\" does not match the pattern ^[a-z0-9_]+$");
  m["models"][1]["id"] = "";
  EXPECT_CONTAINS(error_of(m), "at /models/1/id: \"\" does not match the pattern");
}

TEST_F(Registry, DuplicateId) {
  json m = valid();
  m["models"][1]["id"] = "emotion";
  EXPECT_CONTAINS(error_of(m), "models[1] (id \"emotion\") at /models/1/id: duplicate id \"emotion\"; expected unique "
                               "ids, first used by models[0]");
}

TEST_F(Registry, BadEnumValues) {
  json m = valid();
  m["models"][0]["format"] = "onnxx";
  EXPECT_CONTAINS(error_of(m), "at /models/0/format: \"onnxx\" is not one of: rtneural-json, onnx, coreml, pytorch, "
                               "tensorflow");
  m = valid();
  m["models"][1]["task"] = "groove";
  EXPECT_CONTAINS(error_of(m), "at /models/1/task: \"groove\" is not one of: emotion_embedding,");
  m = valid();
  m["models"][1]["status"] = "done";
  EXPECT_CONTAINS(error_of(m), "at /models/1/status: \"done\" is not one of: stub, training, trained, production, "
                               "deprecated");
}

TEST_F(Registry, InputSizeBounds) {
  json m = valid();
  m["models"][0]["input_size"] = 0;
  EXPECT_CONTAINS(error_of(m), "models[0] (id \"emotion\") at /models/0/input_size: expected at least 1, got 0");
  m["models"][0]["input_size"] = 129;
  EXPECT_CONTAINS(error_of(m), "at /models/0/input_size: expected at most 128, got 129");
  m["models"][0]["input_size"] = 1;
  EXPECT_EQ(error_of(m), "(valid)");
  m["models"][0]["output_size"] = 0;
  EXPECT_CONTAINS(error_of(m), "at /models/0/output_size: expected at least 1, got 0");
}

TEST_F(Registry, WrongTypes) {
  json m = valid();
  m["models"][0]["input_size"] = "128";
  EXPECT_CONTAINS(error_of(m), "at /models/0/input_size: expected integer, got string \"128\"");
  m["models"][0]["input_size"] = 12.5;
  EXPECT_CONTAINS(error_of(m), "at /models/0/input_size: expected integer, got number 12.5");
  m = valid();
  m["models"][0]["training"]["epochs"] = "3";
  EXPECT_CONTAINS(error_of(m), "at /models/0/training/epochs: expected integer, got string \"3\"");
  m = valid();
  m["models"][0]["training"] = "yesterday";
  EXPECT_CONTAINS(error_of(m), "at /models/0/training: expected object, got string \"yesterday\"");
  m = valid();
  m["models"] = json::object();
  EXPECT_CONTAINS(error_of(m), "registry.json: at /models: expected array, got object");
}

TEST_F(Registry, UnknownTopLevelShape) {
  EXPECT_CONTAINS(error_of(json::parse("[]")), "registry.json: at the top level: expected object, got array");
  EXPECT_CONTAINS(error_of(json::parse("{}")), "at the top level: missing required field \"models\"");
  EXPECT_CONTAINS(error_of(json::parse(R"({"model": []})")),
                  "at the top level: unknown field \"model\" (did you mean \"models\"?); expected only models");
  json m = valid();
  m["version"] = 2;
  EXPECT_CONTAINS(error_of(m), "at the top level: unknown field \"version\"; expected only models");
  m = valid();
  m["models"][0]["inputsize"] = 3;
  EXPECT_CONTAINS(error_of(m), "at /models/0: unknown field \"inputsize\" (did you mean \"input_size\"?)");
  m = valid();
  m["models"][0]["training"]["learning_rat"] = 0.1;
  EXPECT_CONTAINS(error_of(m), "at /models/0/training: unknown field \"learning_rat\" (did you mean \"learning_rate\"?)");
}

TEST_F(Registry, MissingFile) {
  json m = valid();
  m["models"][1]["file"] = "models/missing.json";
  EXPECT_CONTAINS(error_of(m), "models[1] (id \"groove_1\") at /models/1/file: file \"models/missing.json\" not found");
  m = valid();
  m["models"][0]["model_card"] = "cards/emotion.md";
  EXPECT_CONTAINS(error_of(m), "at /models/0/model_card: file \"cards/emotion.md\" not found");
  m = valid();
  m["models"][1]["exports"]["onnx_path"] = "models";  // a folder is not a file
  EXPECT_CONTAINS(error_of(m), "at /models/1/exports/onnx_path: file \"models\" not found");
}

TEST_F(Registry, PathsStayInsideTheManifestFolder) {
  json m = valid();
  m["models"][0]["file"] = "/etc/hostname";
  EXPECT_CONTAINS(error_of(m), "at /models/0/file: \"/etc/hostname\" does not match the pattern ^[^/]");
  m["models"][0]["file"] = "models/../../outside.onnx";
  EXPECT_CONTAINS(error_of(m), "at /models/0/file: path \"models/../../outside.onnx\" leaves the manifest's folder");
}

TEST_F(Registry, ShaMismatch) {
  files::write_atomic((dir_ / "models" / "emotion.onnx").string(), "abd");
  EXPECT_CONTAINS(error_of(valid()), "models[0] (id \"emotion\") at /models/0/exports/sha256: sha256 mismatch for "
                                     "emotion.onnx; expected (manifest) " + std::string(kAbcSha256));
  json m = valid();
  m["models"][1]["exports"]["onnx_sha256"] = "ABC";
  EXPECT_CONTAINS(error_of(m), "at /models/1/exports/onnx_sha256: \"ABC\" does not match the pattern ^[0-9a-f]{64}$");
  m = valid();
  m["models"][1]["exports"].erase("onnx_path");
  EXPECT_CONTAINS(error_of(m), "at /models/1/exports: \"onnx_sha256\" needs onnx_path");
}

TEST_F(Registry, EveryProblemIsListedAndTheFirstLineSaysEnough) {
  json m = valid();
  m["models"][0]["file"] = "models/a.onnx";
  m["models"][1]["file"] = "models/b.json";
  const std::string e = error_of(m);
  const std::string first_line = e.substr(0, e.find('\n'));
  EXPECT_CONTAINS(first_line, "models[0] (id \"emotion\") at /models/0/file: file \"models/a.onnx\" not found");
  EXPECT_CONTAINS(first_line, "(and 1 more problem)");
  EXPECT_CONTAINS(e, "\n  models[1] (id \"groove_1\") at /models/1/file: file \"models/b.json\" not found");
}

TEST_F(Registry, MalformedJsonIsADataError) {
  try {
    validate_manifest_text("{\"models\": [", dir_.string(), "registry.json");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_CONTAINS(e.what(), "registry.json: not valid JSON at byte 12");
  }
}

TEST_F(Registry, WriterValidatesBeforeWriting) {
  const std::string path = (dir_ / "registry.json").string();
  std::vector<RegistryEntry> entries;
  RegistryEntry e;
  e.id = "emotion";
  e.file = "models/emotion.onnx";
  e.format = "onnx";
  e.task = "emotion_embedding";
  e.input_size = 128;
  e.output_size = 64;
  e.status = "trained";
  e.training = TrainingInfo{};
  e.training->dataset_id = "emopia";
  e.training->dataset_license = "CC-BY-NC-SA-4.0";
  e.exports = ExportInfo{};
  e.exports->onnx_path = e.file;
  fill_hashes(e, dir_.string());
  EXPECT_EQ(e.exports->sha256, std::optional<std::string>(kAbcSha256));
  entries.push_back(e);
  write_registry(path, entries);
  EXPECT_NO_THROW(validate_manifest(path));
  const std::string good = files::read_all(path);

  // Each refusal leaves the previous manifest in place and no temporary file.
  auto expect_refused = [&](std::vector<RegistryEntry> bad, const std::string& part) {
    try {
      write_registry(path, bad);
      ADD_FAILURE() << "written: " << part;
    } catch (const CheckFailed& err) {
      EXPECT_CONTAINS(err.what(), part);
    }
    EXPECT_EQ(files::read_all(path), good);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 2);  // models/, registry.json
  };
  std::vector<RegistryEntry> twice = {e, e};
  expect_refused(twice, "duplicate id \"emotion\"");
  RegistryEntry nan_loss = e;
  nan_loss.training->val_loss = std::nan("");
  expect_refused({nan_loss}, "at /models/0/training/val_loss: expected number, got null");
  RegistryEntry too_wide = e;
  too_wide.input_size = 129;
  expect_refused({too_wide}, "at /models/0/input_size: expected at most 128, got 129");
  RegistryEntry no_dataset = e;
  no_dataset.training->dataset_license.reset();
  expect_refused({no_dataset}, "at /models/0/training: missing required field \"dataset_license\"");
}

// Engines and licence audits read these of every published model.
TEST_F(Registry, PublishedEntriesNameTheirDataAndTheirOnnxFile) {
  json m = valid();
  m["models"][0]["training"].erase("dataset_id");
  m["models"][0]["training"].erase("dataset_license");
  EXPECT_CONTAINS(error_of(m), "models[0] (id \"emotion\") at /models/0/training: missing required field "
                               "\"dataset_id\", \"dataset_license\"; an entry with status \"trained\" names the "
                               "data set it was trained on and its licence");
  m["models"][0].erase("training");
  EXPECT_CONTAINS(error_of(m), "at /models/0/training: missing required field \"dataset_id\", \"dataset_license\"");
  m = valid();
  m["models"][0]["exports"].erase("onnx_path");
  EXPECT_CONTAINS(error_of(m), "at /models/0/exports: missing required field \"onnx_path\"; an ONNX entry with "
                               "status \"trained\" gives the path of its ONNX file");
  m["models"][0]["status"] = "production";
  EXPECT_CONTAINS(error_of(m), "status \"production\" gives the path of its ONNX file");
  // Models not yet published need neither (the stub entry has no training block).
  m["models"][0]["status"] = "training";
  m["models"][0].erase("training");
  EXPECT_EQ(error_of(m), "(valid)");
  // Checked without looking at files, too (the previous night's manifest).
  m["models"][0]["status"] = "trained";
  EXPECT_THROW(validate_manifest_text(m.dump(), dir_.string(), "registry.json", /*check_files=*/false), CheckFailed);
}

TEST(RegistrySchema, CompiledInSchemaIsTheShippedFile) {
  EXPECT_EQ(std::string(registry_schema()),
            files::read_all(std::string(KMIDI_SOURCE_DIR) + "/export/schema/registry.schema.json"));
}

}  // namespace
}  // namespace kmidi::registry
