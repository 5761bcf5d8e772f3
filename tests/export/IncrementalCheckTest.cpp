// onnx/check/IncrementalCheck.h on a real MidiGenerator over the real tokenizer's
// vocabulary and real POP909 token ids: the incremental graph streamed token
// by token reproduces the full graph, and a wrong incremental graph is caught.

#include "onnx/check/IncrementalCheck.h"

#include <gtest/gtest.h>

#include "core/Errors.h"
#include "onnx/check/GeneratorExportCheck.h"
#include "onnx/check/Parity.h"
#include "tests/export/GeneratorExportChecks.h"

namespace kmidi::onnx {
namespace {

struct Files {
  std::string full, incremental, other_incremental, full_without_tokenizer;
};

const Files& graphs() {
  static const Files files = [] {
    const auto tok = test::real_tokenizer();
    const std::string dir = test::scratch_dir("incremental_check", test::ScratchLifetime::kProgram);
    Files f{dir + "/generator.onnx", dir + "/generator_incremental.onnx", dir + "/other_incremental.onnx",
            dir + "/bare.onnx"};
    models::MidiGenerator model = test::small_generator(tok.vocab_size(), 11);
    test::write_generator(model, false, tok, f.full);
    test::write_generator(model, true, tok, f.incremental);
    test::write_generator(model, false, tok, f.full_without_tokenizer, /*with_tokenizer=*/false);
    models::MidiGenerator other = test::small_generator(tok.vocab_size(), 12);  // other weights
    test::write_generator(other, true, tok, f.other_incremental);
    return f;
  }();
  return files;
}

data::NamedTensors real_inputs(int64_t length) {
  const auto tok = test::real_tokenizer();
  data::NamedTensors inputs;
  inputs.set("input_ids", test::song_ids(tok, {"001.mid", "002.mid"}, length));
  torch::manual_seed(3);
  inputs.set("emotion", torch::rand({2, 64}) * 2 - 1);
  return inputs;
}

TEST(IncrementalCheck, StreamedLogitsEqualTheFullGraphsTokenByToken) {
  const data::NamedTensors inputs = real_inputs(10);
  const ParityReport report = check_incremental_matches_full(graphs().full, graphs().incremental, inputs);
  EXPECT_TRUE(report.passed()) << report.summary();
  ASSERT_EQ(report.outputs.size(), 1u);
  EXPECT_EQ(report.outputs[0].candidate_shape, (std::vector<int64_t>{2, 10, test::real_tokenizer().vocab_size()}));
  EXPECT_LE(report.outputs[0].max_abs_diff, 1e-4);
}

TEST(IncrementalCheck, AnIncrementalGraphOfOtherWeightsFailsAtTheFirstRun) {
  try {
    check_incremental_matches_full(graphs().full, graphs().other_incremental, real_inputs(6));
    FAIL() << "expected CheckFailed";
  } catch (const CheckFailed& e) {
    EXPECT_NE(std::string(e.what()).find("other_incremental.onnx: run 0 (tokens 0..3) differs from the full graph"),
              std::string::npos)
        << e.what();
  }
}

TEST(IncrementalCheck, AGraphWithoutPastInputsIsRefused) {
  try {
    check_incremental_matches_full(graphs().full, graphs().full, real_inputs(6));
    FAIL() << "expected CheckFailed";
  } catch (const CheckFailed& e) {
    EXPECT_NE(std::string(e.what()).find("no input starts with 'past_'; expected an incremental graph"),
              std::string::npos)
        << e.what();
  }
}

GeneratorCheckInputs check_inputs() {
  GeneratorCheckInputs c;
  c.inputs = real_inputs(7);
  const auto tok = test::real_tokenizer();
  c.decode_ids = tok.encode(midi::read_midi_file(test::source_path("data/pop909-sample/004.mid")));
  return c;
}

TEST(GeneratorExportCheck, PassesOnTheGraphsOfOneModelAndRefusesWhatAConsumerCouldNotUse) {
  const auto tok = test::real_tokenizer();
  const auto check = generator_extra_check(tok, check_inputs());
  check({{"", graphs().full}, {"incremental", graphs().incremental}});

  const auto expect_refused = [&](const std::map<std::string, std::string>& candidates,
                                  const tokenizer::Tokenizer& trained_with, const std::string& message) {
    try {
      check_generator_graphs(candidates, trained_with, check_inputs());
      ADD_FAILURE() << "expected a refusal: " << message;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  expect_refused({{"", graphs().full}, {"incremental", graphs().other_incremental}}, tok,
                 "run 0 (tokens 0..3) differs from the full graph");
  expect_refused({{"", graphs().full_without_tokenizer}, {"incremental", graphs().incremental}}, tok,
                 "bare.onnx: metadata has no kmidi.tokenizer");
  tokenizer::TokenizerConfig other;
  other.extra_special_tokens = {"SEP"};
  expect_refused({{"", graphs().full}, {"incremental", graphs().incremental}}, tokenizer::Tokenizer(other),
                 "the tokenizer in its metadata differs from the one the model was trained with");
  expect_refused({{"", graphs().full}}, tok, "no graph with suffix 'incremental'");
}

}  // namespace
}  // namespace kmidi::onnx
