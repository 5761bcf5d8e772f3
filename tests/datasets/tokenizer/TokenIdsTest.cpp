// The start-up check: every stated id or vocab size that disagrees with the
// tokenizer is an error naming the key and both values.

#include "datasets/tokenizer/TokenIds.h"

#include <gtest/gtest.h>

#include "datasets/tokenizer/Tokenizer.h"

namespace kmidi::tokenizer {
namespace {

struct ModelConfig : config::Section {
  int64_t d_model = 256;
  StatedTokenIds ids;
  void visit(config::Visitor& v) override {
    v.field("d_model", d_model);
    ids.visit(v);  // the keys sit inline: model.pad_id, model.vocab_size, ...
  }
};

struct Root : config::Section {
  ModelConfig model;
  void visit(config::Visitor& v) override { v.section("model", model); }
};

std::string check_error(const std::string& yaml) {
  Root root;
  config::Document::load_string(yaml, "train.yaml", "/").read_into(root);
  TokenizerConfig c;
  c.extra_special_tokens = {"SEP"};
  const Tokenizer tok(c);
  try {
    check_stated_ids(tok, "runs/a/tokenizer.json", root.model.ids, "model");
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(TokenIds, UnstatedIdsPass) {
  EXPECT_EQ(check_error("model: {d_model: 64}\n"), "");
  EXPECT_EQ(check_error("model: {pad_id: 0, bos_id: 1, eos_id: 2, mask_id: 3, vocab_size: 532}\n"), "");
}

TEST(TokenIds, EveryMismatchNamesKeyAndBothValues) {
  EXPECT_EQ(check_error("model: {pad_id: 384}\n"),
            "model.pad_id is 384 but tokenizer.json (runs/a/tokenizer.json) defines PAD = 0");
  EXPECT_EQ(check_error("model: {bos_id: 0}\n"),
            "model.bos_id is 0 but tokenizer.json (runs/a/tokenizer.json) defines BOS = 1");
  EXPECT_EQ(check_error("model: {eos_id: 386}\n"),
            "model.eos_id is 386 but tokenizer.json (runs/a/tokenizer.json) defines EOS = 2");
  EXPECT_EQ(check_error("model: {mask_id: 387}\n"),
            "model.mask_id is 387 but tokenizer.json (runs/a/tokenizer.json) defines MASK = 3");
  EXPECT_EQ(check_error("model: {vocab_size: 388}\n"),
            "model.vocab_size is 388 but tokenizer.json (runs/a/tokenizer.json) has vocab_size = 532");
  // Several at once: all are listed in one message.
  EXPECT_EQ(check_error("model: {vocab_size: 512, pad_id: 3}\n"),
            "model.vocab_size is 512 but tokenizer.json (runs/a/tokenizer.json) has vocab_size = 532; "
            "model.pad_id is 3 but tokenizer.json (runs/a/tokenizer.json) defines PAD = 0");
}

TEST(TokenIds, GenericStatementsIncludingExtras) {
  const Tokenizer tok{TokenizerConfig{}};
  try {
    check_stated_ids(tok, "t.json", {{"loss.ignore_index", "PAD", 0}, {"gen.sep_id", "SEP", 4}});
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "gen.sep_id names special token SEP, which tokenizer.json (t.json) does not define (it has PAD, BOS, "
                 "EOS, MASK)");
  }
  EXPECT_NO_THROW(check_stated_ids(tok, "t.json", {{"loss.ignore_index", "PAD", tok.pad_id()}}));
}

TEST(TokenIds, NegativeValuesOtherThanMinusOneAreConfigErrors) {
  Root root;
  try {
    config::Document::load_string("model: {pad_id: -2}\n", "train.yaml", "/").read_into(root);
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.pad_id: must be >= -1, got -2"), std::string::npos);
  }
}

}  // namespace
}  // namespace kmidi::tokenizer
