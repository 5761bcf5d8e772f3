#pragma once
// Shared by the generator export-check tests: a small MidiGenerator over the
// real tokenizer's vocabulary, real token ids from POP909 songs, and its two
// graphs written to files.

#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/Files.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/tokenizer/Tokenizer.h"
#include "onnx/check/TokenizerMetadata.h"
#include "onnx/Metadata.h"
#include "onnx/ModelBuilder.h"
#include "onnx/ModelCheck.h"
#include "models/MidiGeneratorOnnx.h"
#include "tests/support/TestSupport.h"

namespace kmidi::test {

inline tokenizer::Tokenizer real_tokenizer() { return tokenizer::Tokenizer(tokenizer::TokenizerConfig{}); }

inline models::MidiGenerator small_generator(int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  models::MidiGeneratorOptions o;
  o.vocab_size = vocab;
  o.d_model = 32;
  o.n_layers = 2;
  o.n_heads = 4;
  o.d_ff = 64;
  o.condition_tokens = 2;
  models::MidiGenerator model(o);
  model->eval();
  return model;
}

/// The first `length` token ids of each song, as [songs, length].
inline torch::Tensor song_ids(const tokenizer::Tokenizer& tok, const std::vector<std::string>& songs, int64_t length) {
  std::vector<torch::Tensor> rows;
  for (const std::string& song : songs) {
    const auto ids = tok.encode(midi::read_midi_file(source_path("data/pop909-sample/" + song)));
    std::vector<int64_t> first(ids.begin(), ids.begin() + length);
    rows.push_back(torch::tensor(first, torch::kLong));
  }
  return torch::stack(rows);
}

/// Writes the generator's graph (with the tokenizer's metadata) to `path`.
inline void write_generator(models::MidiGenerator& model, bool incremental, const tokenizer::Tokenizer& tok,
                            const std::string& path, bool with_tokenizer = true) {
  onnx::ModelBuilder b;
  b.set_metadata(onnx::meta::kFormatVersion, onnx::meta::kCurrentFormatVersion);
  models::emit_midi_generator(b, *model, incremental);
  if (with_tokenizer) {
    for (const auto& [key, value] : onnx::tokenizer_metadata(tok)) b.set_metadata(key, value);
  }
  const std::string bytes = b.build();
  onnx::check_model(bytes, path);
  files::write_atomic(path, bytes);
}

}  // namespace kmidi::test
