#pragma once
// The start-up check that keeps every component on the tokenizer's ids. A
// model config may state a vocab size or special ids (or leave them at -1 to
// take the tokenizer's); any stated value that disagrees is an error naming
// the key and both values. The old pipeline's bug (YAML pad 0, trainer pad
// 384) becomes a config error before any step runs.

#include <cstdint>
#include <string>
#include <vector>

#include "core/Config.h"

namespace kmidi::tokenizer {

class Tokenizer;

/// Ids a model config may state; -1 means "not stated, take the tokenizer's".
/// Embed it as a section, or call its visit() from a parent's visit() to get
/// the keys inline (model.vocab_size, model.pad_id, ...).
struct StatedTokenIds : config::Section {
  int64_t vocab_size = -1;
  int64_t pad_id = -1;
  int64_t bos_id = -1;
  int64_t eos_id = -1;
  int64_t mask_id = -1;
  void visit(config::Visitor& v) override;
};

/// One stated value: `key` as the user wrote it ("model.pad_id"), `token` a
/// special token name (PAD, BOS, EOS, MASK or an extra) or "vocab_size".
struct StatedId {
  std::string key;
  std::string token;
  int64_t value = -1;
};

/// Throws config::ConfigError listing every disagreement, e.g.
/// "model.pad_id is 0 but tokenizer.json (runs/a/tokenizer.json) defines PAD = 3".
/// Values of -1 are not statements and pass. `tokenizer_source` names the file.
void check_stated_ids(const Tokenizer& tokenizer, const std::string& tokenizer_source,
                      const std::vector<StatedId>& stated);

/// The same for a StatedTokenIds whose keys live under `key_prefix` ("model").
void check_stated_ids(const Tokenizer& tokenizer, const std::string& tokenizer_source,
                      const StatedTokenIds& stated, const std::string& key_prefix);

}  // namespace kmidi::tokenizer
