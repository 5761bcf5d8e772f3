#pragma once
// A token model's tokenizer inside its .onnx file: written as metadata_props
// by the exporter, read back by a consumer that has nothing but the file
// (../shared/CONTRACTS.md: "A loader must be able to decode generated ids with
// nothing but the .onnx file"). Torch-free.

#include <map>
#include <string>

#include "datasets/tokenizer/Tokenizer.h"
#include "onnx/ModelCheck.h"

namespace kmidi::onnx {

/// The metadata of a token model: kmidi.tokenizer = tokenizer.to_json() (its
/// "grammar" says which token may follow which, for masking sampling) and,
/// for every special token, kmidi.special_token.<name in lower case> = its id
/// in decimal (e.g. kmidi.special_token.eos = "2"). Goes into GraphExport::metadata.
std::map<std::string, std::string> tokenizer_metadata(const tokenizer::Tokenizer& tokenizer);

/// The tokenizer stored in a model's metadata. Throws DataError naming
/// `origin` when kmidi.tokenizer is missing or unreadable (Tokenizer::from_json's
/// reason), when a special token has no kmidi.special_token.<name> key, or when
/// such a key disagrees with the tokenizer ("kmidi.special_token.eos is 5; the
/// tokenizer says 2") or names no special token of it.
tokenizer::Tokenizer tokenizer_from_model_info(const OnnxModelInfo& info, const std::string& origin);

/// tokenizer_from_model_info on the file at `path`.
tokenizer::Tokenizer tokenizer_from_onnx(const std::string& path);

}  // namespace kmidi::onnx
