#include "datasets/tokenizer/TokenIds.h"

#include "core/Strings.h"
#include "datasets/tokenizer/Tokenizer.h"

namespace kmidi::tokenizer {

void StatedTokenIds::visit(config::Visitor& v) {
  using config::Spec;
  const char* note = "; -1 (default): take it from tokenizer.json. A stated value must equal the tokenizer's";
  v.field("vocab_size", vocab_size, Spec(std::string("vocabulary size") + note).min(-1));
  v.field("pad_id", pad_id, Spec(std::string("PAD id, the loss's ignore_index") + note).min(-1));
  v.field("bos_id", bos_id, Spec(std::string("BOS id") + note).min(-1));
  v.field("eos_id", eos_id, Spec(std::string("EOS id") + note).min(-1));
  v.field("mask_id", mask_id, Spec(std::string("MASK id") + note).min(-1));
}

void check_stated_ids(const Tokenizer& tokenizer, const std::string& tokenizer_source,
                      const std::vector<StatedId>& stated) {
  std::vector<std::string> problems;
  for (const StatedId& s : stated) {
    if (s.value == -1) continue;
    if (s.token == "vocab_size") {
      if (s.value != tokenizer.vocab_size()) {
        problems.push_back(s.key + " is " + std::to_string(s.value) + " but tokenizer.json (" + tokenizer_source +
                           ") has vocab_size = " + std::to_string(tokenizer.vocab_size()));
      }
      continue;
    }
    const int32_t id = tokenizer.special_id(s.token);
    if (id < 0) {
      problems.push_back(s.key + " names special token " + s.token + ", which tokenizer.json (" + tokenizer_source +
                         ") does not define (it has " + strings::join(tokenizer.vocab().special_names(), ", ") + ")");
    } else if (s.value != id) {
      problems.push_back(s.key + " is " + std::to_string(s.value) + " but tokenizer.json (" + tokenizer_source +
                         ") defines " + s.token + " = " + std::to_string(id));
    }
  }
  if (!problems.empty()) throw config::ConfigError(strings::join(problems, "; "));
}

void check_stated_ids(const Tokenizer& tokenizer, const std::string& tokenizer_source, const StatedTokenIds& stated,
                      const std::string& key_prefix) {
  const std::string p = key_prefix.empty() ? "" : key_prefix + ".";
  check_stated_ids(tokenizer, tokenizer_source,
                   {{p + "vocab_size", "vocab_size", stated.vocab_size},
                    {p + "pad_id", "PAD", stated.pad_id},
                    {p + "bos_id", "BOS", stated.bos_id},
                    {p + "eos_id", "EOS", stated.eos_id},
                    {p + "mask_id", "MASK", stated.mask_id}});
}

}  // namespace kmidi::tokenizer
