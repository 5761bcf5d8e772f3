// A consumer decodes generated ids with nothing but the .onnx file: the
// tokenizer comes back from metadata_props, and decoding with it gives the
// same MIDI as the tokenizer the model was trained with.

#include "onnx/check/TokenizerMetadata.h"

#include <gtest/gtest.h>

#include "core/Errors.h"
#include "datasets/midi/MidiWriter.h"
#include "models/Sampling.h"
#include "tests/export/GeneratorExportChecks.h"

namespace kmidi::onnx {
namespace {

void expect_same_notes(const midi::Score& a, const midi::Score& b) {
  ASSERT_EQ(a.notes.size(), b.notes.size());
  for (size_t i = 0; i < a.notes.size(); ++i) {
    EXPECT_EQ(a.notes[i].pitch, b.notes[i].pitch) << i;
    EXPECT_EQ(a.notes[i].velocity, b.notes[i].velocity) << i;
    EXPECT_EQ(a.notes[i].program, b.notes[i].program) << i;
    EXPECT_EQ(a.notes[i].start_tick, b.notes[i].start_tick) << i;
    EXPECT_EQ(a.notes[i].end_tick, b.notes[i].end_tick) << i;
  }
}

TEST(TokenizerMetadata, GeneratedIdsDecodeWithOnlyTheFile) {
  const auto trained_with = test::real_tokenizer();
  const std::string path = test::scratch_dir("tokenizer_metadata") + "/generator.onnx";
  {
    models::MidiGenerator model = test::small_generator(trained_with.vocab_size(), 21);
    test::write_generator(model, false, trained_with, path);
  }
  // From here on, only the file.
  const tokenizer::Tokenizer loaded = tokenizer_from_onnx(path);
  EXPECT_EQ(loaded.to_json(), trained_with.to_json());
  const OnnxModelInfo info = read_model_info(path);
  // The special ids Tokenizer.h documents: PAD 0, BOS 1, EOS 2, MASK 3.
  EXPECT_EQ(info.metadata_value("kmidi.special_token.pad").value_or(""), "0");
  EXPECT_EQ(info.metadata_value("kmidi.special_token.bos").value_or(""), "1");
  EXPECT_EQ(info.metadata_value("kmidi.special_token.eos").value_or(""), "2");
  EXPECT_EQ(info.metadata_value("kmidi.special_token.mask").value_or(""), "3");
  // The grammar travels inside kmidi.tokenizer, so a runtime with only the
  // file masks sampling as kmidi generate does.
  EXPECT_NE(info.metadata_value("kmidi.tokenizer").value_or("").find("\"format\": \"kmidi.grammar\""), std::string::npos);
  EXPECT_TRUE(loaded.grammar() == trained_with.grammar());

  // Ids of a real song, and ids a model generated (a trained-from-scratch
  // model emits grammar breaks that decode() must skip the same way).
  const auto song = trained_with.encode(midi::read_midi_file(test::source_path("data/pop909-sample/003.mid")));
  models::MidiGenerator model = test::small_generator(trained_with.vocab_size(), 21);
  models::SamplingOptions sampling;
  sampling.max_new_tokens = 96;
  sampling.seed = 5;
  sampling.stop_ids = {trained_with.eos_id()};
  const auto generated64 = models::generate(model, {trained_with.bos_id()}, torch::zeros({64}), sampling);
  const std::vector<int32_t> generated(generated64.begin(), generated64.end());
  for (const std::vector<int32_t>* ids : {&song, &generated}) {
    const midi::Score mine = loaded.decode(*ids);
    expect_same_notes(mine, trained_with.decode(*ids));
    // ... and the MIDI file a consumer writes reads back with those notes.
    const midi::Score reread = midi::read_midi_bytes(midi::write_midi_bytes(mine), "decoded.mid");
    EXPECT_EQ(reread.notes.size(), mine.notes.size());
  }
  EXPECT_GT(loaded.decode(song).notes.size(), 100u);
}

TEST(TokenizerMetadata, MissingOrInconsistentMetadataIsRefused) {
  const auto tok = test::real_tokenizer();
  const auto expect_refused = [](std::map<std::string, std::string> metadata, const std::string& message) {
    OnnxModelInfo info;
    for (auto& [k, v] : metadata) info.metadata.emplace_back(k, v);
    try {
      tokenizer_from_model_info(info, "model.onnx");
      ADD_FAILURE() << "expected DataError: " << message;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  auto good = tokenizer_metadata(tok);
  auto m = good;
  m.erase("kmidi.tokenizer");
  expect_refused(m, "model.onnx: metadata has no kmidi.tokenizer");
  m = good;
  m["kmidi.special_token.eos"] = "5";
  expect_refused(m, "model.onnx: kmidi.special_token.eos is 5; the tokenizer says 2");
  m = good;
  m.erase("kmidi.special_token.mask");
  expect_refused(m, "metadata has no kmidi.special_token.mask for the tokenizer's special token MASK");
  m = good;
  m["kmidi.special_token.sep"] = "9";
  expect_refused(m, "kmidi.special_token.sep (= 9) names no special token of the tokenizer");
  m = good;
  m["kmidi.tokenizer"] = "{\"format\": 1";
  expect_refused(m, "model.onnx: kmidi.tokenizer");
}

}  // namespace
}  // namespace kmidi::onnx
