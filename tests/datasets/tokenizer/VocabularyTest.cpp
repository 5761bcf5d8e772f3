// Vocabulary layout, determinism and tokenizer.json: ids are checked against
// numbers worked out by hand from the documented layout.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/Config.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "tests/support/TestSupport.h"

namespace kmidi::tokenizer {
namespace {

namespace fs = std::filesystem;

template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no error>";
}

TokenizerConfig from_yaml(const std::string& text) {
  TokenizerConfig c;
  config::Document::load_string(text, "tok.yaml", "/").read_into(c);
  return c;
}

TEST(Vocabulary, DefaultLayoutMatchesHandCount) {
  const Tokenizer tok{TokenizerConfig{}};
  const Vocabulary& v = tok.vocab();
  // 4 specials, Bar, 72 positions (6/4 and 12/8 bars are 6 quarters x 12),
  // 11 time signatures, 32 tempos, 128 programs, 88 pitches (21..108),
  // 67 drum pitches (21..87), 32 velocities, 96 durations (8 quarters x 12).
  EXPECT_EQ(tok.vocab_size(), 4 + 1 + 72 + 11 + 32 + 128 + 88 + 67 + 32 + 96);
  EXPECT_EQ(v.name(0), "PAD");
  EXPECT_EQ(v.name(1), "BOS");
  EXPECT_EQ(v.name(2), "EOS");
  EXPECT_EQ(v.name(3), "MASK");
  EXPECT_EQ(v.name(4), "Bar");
  EXPECT_EQ(v.name(5), "Position_0");
  EXPECT_EQ(v.name(76), "Position_71");
  EXPECT_EQ(v.name(77), "TimeSig_4/4");
  EXPECT_EQ(v.name(87), "TimeSig_7/8");
  EXPECT_EQ(v.name(88), "Tempo_40.00");
  EXPECT_EQ(v.name(119), "Tempo_250.00");
  EXPECT_EQ(v.name(120), "Program_0");
  EXPECT_EQ(v.name(247), "Program_127");
  EXPECT_EQ(v.name(248), "Pitch_21");
  EXPECT_EQ(v.name(335), "Pitch_108");
  EXPECT_EQ(v.name(336), "PitchDrum_21");
  EXPECT_EQ(v.name(402), "PitchDrum_87");
  EXPECT_EQ(v.name(403), "Velocity_1");
  EXPECT_EQ(v.name(404), "Velocity_5");  // 1 + round(126 / 31)
  EXPECT_EQ(v.name(434), "Velocity_127");
  EXPECT_EQ(v.name(435), "Duration_1");
  EXPECT_EQ(v.name(530), "Duration_96");
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.mask_id(), 3);
  EXPECT_EQ(v.find("Pitch_60"), 248 + 39);
  EXPECT_EQ(v.find("Pitch_20"), -1);
  EXPECT_EQ(v.info(248 + 39).kind, TokenKind::kPitch);
  EXPECT_EQ(v.info(248 + 39).value, 60);
  EXPECT_EQ(error_of<UsageError>([&] { v.name(531); }), "token id 531 is outside the vocabulary [0, 531)");
}

TEST(Vocabulary, DisabledKindsAreAbsentAndExtrasFollowMask) {
  TokenizerConfig c = from_yaml(
      "positions_per_quarter: 4\npitch_min: 60\npitch_max: 61\ndrums: false\nvelocity_bins: 2\n"
      "duration_max_quarters: 1\ntempos: false\ntime_signatures: false\nprogram_mode: none\n"
      "extra_special_tokens: [SEP, CLS]\n");
  const Tokenizer tok(c);
  const std::vector<std::string> expected{"PAD", "BOS", "EOS", "MASK", "SEP", "CLS", "Bar",
                                          "Position_0", "Position_1", "Position_2", "Position_3", "Position_4",
                                          "Position_5", "Position_6", "Position_7", "Position_8", "Position_9",
                                          "Position_10", "Position_11", "Position_12", "Position_13", "Position_14",
                                          "Position_15", "Pitch_60", "Pitch_61", "Velocity_1", "Velocity_127",
                                          "Duration_1", "Duration_2", "Duration_3", "Duration_4"};
  EXPECT_EQ(tok.vocab().names(), expected);
  EXPECT_EQ(tok.special_id("SEP"), 4);
  EXPECT_EQ(tok.special_id("CLS"), 5);
  EXPECT_EQ(tok.special_id("UNK"), -1);
}

TEST(Vocabulary, QuantizersFollowTheirFormulas) {
  const Tokenizer tok{TokenizerConfig{}};
  const Vocabulary& v = tok.vocab();
  for (int b = 0; b < 32; ++b) EXPECT_EQ(v.velocity_value(b), 1 + static_cast<int>(std::lround(b * 126.0 / 31)));
  for (int vel = 1; vel <= 127; ++vel) {
    int best = 0;
    for (int b = 1; b < 32; ++b) {
      if (std::abs(v.velocity_value(b) - vel) < std::abs(v.velocity_value(best) - vel)) best = b;
    }
    EXPECT_EQ(v.velocity_bin(vel), best) << vel;
  }
  EXPECT_NEAR(v.tempo_value(0), 40.0, 1e-9);
  EXPECT_NEAR(v.tempo_value(31), 250.0, 1e-9);
  EXPECT_NEAR(v.tempo_value(10), 40.0 * std::pow(250.0 / 40.0, 10.0 / 31.0), 1e-9);
  EXPECT_EQ(v.tempo_bin(10.0), 0);
  EXPECT_EQ(v.tempo_bin(1000.0), 31);
  EXPECT_EQ(v.tempo_bin(v.tempo_value(17) * 1.01), 17);
  EXPECT_EQ(v.bar_steps(TimeSignatureValue{6, 8}), 36);
  EXPECT_EQ(v.bar_steps(TimeSignatureValue{4, 4}), 48);
}

TEST(Vocabulary, SameConfigSameIdsAndJsonRoundTrip) {
  TokenizerConfig c = from_yaml("program_mode: on_change\nvelocity_bins: 16\nextra_special_tokens: [SEP]\n");
  const Tokenizer a(c), b(c);
  EXPECT_EQ(a.vocab().names(), b.vocab().names());
  EXPECT_EQ(a.to_json(), b.to_json());
  EXPECT_EQ(a.sha256(), b.sha256());

  const fs::path dir = test::scratch_dir("vocab");
  const std::string path = (dir / "tokenizer.json").string();
  a.save(path);
  const Tokenizer loaded = Tokenizer::load(path);
  EXPECT_EQ(loaded.vocab().names(), a.vocab().names());
  EXPECT_EQ(loaded.to_json(), a.to_json());
  EXPECT_EQ(loaded.config().program_mode, "on_change");
  EXPECT_EQ(loaded.config().velocity_bins, 16);
  EXPECT_EQ(loaded.special_id("SEP"), 4);

  // The file is plain JSON a loader in another language can read.
  const auto j = nlohmann::json::parse(files::read_all(path));
  EXPECT_EQ(j["format"], "kmidi.tokenizer");
  EXPECT_EQ(j["format_version"], 1);
  EXPECT_EQ(j["special_tokens"]["PAD"], 0);
  EXPECT_EQ(j["special_tokens"]["SEP"], 4);
  EXPECT_EQ(j["vocab"].size(), static_cast<size_t>(a.vocab_size()));
  EXPECT_EQ(j["vocab"][4], "SEP");
  fs::remove_all(dir);
}

TEST(Vocabulary, DifferentConfigsDifferentSha) {
  TokenizerConfig c;
  const Tokenizer a(c);
  c.velocity_bins = 31;
  const Tokenizer b(c);
  EXPECT_NE(a.sha256(), b.sha256());
}

std::string load_error(const std::function<void(nlohmann::ordered_json&)>& edit) {
  auto j = nlohmann::ordered_json::parse(Tokenizer(TokenizerConfig{}).to_json());
  edit(j);
  return error_of<DataError>([&] { Tokenizer::from_json(j.dump(), "runs/x/tokenizer.json"); });
}

TEST(Vocabulary, LoadRefusesBadFiles) {
  EXPECT_EQ(load_error([](auto&) {}), "<no error>");
  EXPECT_EQ(load_error([](auto& j) { j["format_version"] = 2; }),
            "runs/x/tokenizer.json: format_version 2 was written by a newer kmidi; this build reads up to 1");
  EXPECT_EQ(load_error([](auto& j) { j["format"] = "other"; }),
            "runs/x/tokenizer.json: format is \"other\", expected \"kmidi.tokenizer\"");
  EXPECT_EQ(load_error([](auto& j) { j.erase("vocab"); }), "runs/x/tokenizer.json: missing key 'vocab'");
  EXPECT_EQ(load_error([](auto& j) { j["vocab"][6] = "Position_2"; }),
            "runs/x/tokenizer.json: stored vocab differs from the vocab rebuilt from its config at id 6: stored "
            "\"Position_2\", rebuilt \"Position_1\"");
  EXPECT_EQ(load_error([](auto& j) { j["config"]["pitch_min"] = 22; }),
            "runs/x/tokenizer.json: vocab_size is 531 but the vocabulary rebuilt from its config has 530 tokens");
  EXPECT_EQ(load_error([](auto& j) { j["special_tokens"]["PAD"] = 3; }),
            "runs/x/tokenizer.json: special_tokens.PAD is 3 but the config defines PAD = 0");
  EXPECT_EQ(load_error([](auto& j) { j["special_tokens"]["UNK"] = 9; }),
            "runs/x/tokenizer.json: special_tokens names 'UNK', which the config does not define");
  EXPECT_NE(load_error([](auto& j) { j["config"]["pitch_max"] = 10; }).find("pitch_max: must be >= pitch_min (21)"),
            std::string::npos);
  EXPECT_NE(load_error([](auto& j) { j["config"]["colour"] = 1; }).find("colour: unknown key"), std::string::npos);
  EXPECT_EQ(error_of<DataError>([] { Tokenizer::from_json("{\"format\": ", "t.json"); }).rfind("t.json: not valid JSON", 0),
            0u);
  EXPECT_EQ(error_of<DataError>([] { Tokenizer::load("/nonexistent/tokenizer.json"); })
                .rfind("/nonexistent/tokenizer.json: cannot open", 0),
            0u);
}

std::string config_error(const std::string& yaml) {
  return error_of<config::ConfigError>([&] { Tokenizer tok(from_yaml(yaml)); });
}

TEST(Vocabulary, ConfigRulesNameTheKey) {
  EXPECT_NE(config_error("pitch_min: 70\npitch_max: 60\n").find("pitch_max: must be >= pitch_min (70)"), std::string::npos);
  EXPECT_NE(config_error("positions_per_quarter: 1\nallowed_time_signatures: [4/4, 3/8]\n")
                .find("a bar of 3/8 is not a whole number of grid steps at positions_per_quarter 1"),
            std::string::npos);
  EXPECT_NE(config_error("allowed_time_signatures: [4/4, 4-4]\n").find("'4-4' is not a time signature"), std::string::npos);
  EXPECT_NE(config_error("allowed_time_signatures: [4/4, 4/3]\n").find("'4/3' is not a time signature"), std::string::npos);
  EXPECT_NE(config_error("time_signature_fallback: 5/4\nallowed_time_signatures: [4/4]\n")
                .find("time_signature_fallback: '5/4' must be one of allowed_time_signatures"),
            std::string::npos);
  EXPECT_NE(config_error("extra_special_tokens: [PAD]\n").find("'PAD' is already a special token"), std::string::npos);
  EXPECT_NE(config_error("extra_special_tokens: [sep]\n").find("'sep' must be upper-case"), std::string::npos);
  EXPECT_NE(config_error("decode_ticks_per_quarter: 100\n").find("must be a multiple of positions_per_quarter (12)"),
            std::string::npos);
  EXPECT_NE(config_error("program_mode: per_track\n").find("must be one of none, per_note, on_change"), std::string::npos);
  EXPECT_NE(config_error("tempo_min: 200\ntempo_max: 100\n").find("tempo_max: must be greater than tempo_min"),
            std::string::npos);
  // A config built in code gets the same checks.
  TokenizerConfig c;
  c.velocity_bins = 1;
  EXPECT_NE(error_of<config::ConfigError>([&] { Tokenizer tok(c); }).find("velocity_bins: must be in [2, 127], got 1"),
            std::string::npos);
}

}  // namespace
}  // namespace kmidi::tokenizer
