#include "onnx/check/TokenizerMetadata.h"

#include <cctype>
#include <set>

#include "core/Errors.h"
#include "onnx/Metadata.h"

namespace kmidi::onnx {
namespace {

/// Special names are upper-case letters, digits and '_' (TokenizerConfig
/// checks it), so lower-casing is one-to-one and gives a valid metadata key.
std::string key_of(const std::string& special_name) {
  std::string key = meta::kSpecialTokenPrefix;
  for (const char c : special_name) key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return key;
}

}  // namespace

std::map<std::string, std::string> tokenizer_metadata(const tokenizer::Tokenizer& tokenizer) {
  std::map<std::string, std::string> out;
  out[meta::kTokenizer] = tokenizer.to_json();
  for (const std::string& name : tokenizer.vocab().special_names()) {
    out[key_of(name)] = std::to_string(tokenizer.special_id(name));
  }
  return out;
}

tokenizer::Tokenizer tokenizer_from_model_info(const OnnxModelInfo& info, const std::string& origin) {
  const auto json = info.metadata_value(meta::kTokenizer);
  if (!json) throw DataError(origin + ": metadata has no " + meta::kTokenizer + "; expected a token model's tokenizer");
  tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_json(*json, origin + ": " + meta::kTokenizer);

  std::set<std::string> expected_keys;
  for (const std::string& name : tok.vocab().special_names()) {
    const std::string key = key_of(name);
    expected_keys.insert(key);
    const auto value = info.metadata_value(key);
    if (!value) throw DataError(origin + ": metadata has no " + key + " for the tokenizer's special token " + name);
    const std::string id = std::to_string(tok.special_id(name));
    if (*value != id) {
      throw DataError(origin + ": " + key + " is " + *value + "; the tokenizer says " + id);
    }
  }
  const std::string prefix = meta::kSpecialTokenPrefix;
  for (const auto& [key, value] : info.metadata) {
    if (key.compare(0, prefix.size(), prefix) == 0 && expected_keys.count(key) == 0) {
      throw DataError(origin + ": " + key + " (= " + value + ") names no special token of the tokenizer");
    }
  }
  return tok;
}

tokenizer::Tokenizer tokenizer_from_onnx(const std::string& path) {
  return tokenizer_from_model_info(read_model_info(path), path);
}

}  // namespace kmidi::onnx
