#pragma once
// ONNX graphs of the MIDI generator (see export/README.md for the tables).
//
// Full graph: input_ids int64 [batch, sequence], emotion float32 [batch, E]
//   → logits float32 [batch, sequence, vocab].
// Incremental graph: the same inputs (only the new tokens) plus, per layer l,
//   past_key_l and past_value_l float32 [batch, heads, past_sequence, head_dim]
//   (rotated keys; empty, past_sequence = 0, on the first call)
//   → logits for the new tokens, then present_key_l and present_value_l
//   [batch, heads, total_sequence, head_dim], in layer order (key, value).
// Neither graph takes an attention mask: rows are unpadded.

#include <cstdint>
#include <string>

#include "onnx/ModelBuilder.h"
#include "models/MidiGenerator.h"

namespace kmidi::models {

std::string past_key_name(int64_t layer);
std::string past_value_name(int64_t layer);
std::string present_key_name(int64_t layer);
std::string present_value_name(int64_t layer);

/// Emits the generator in eval mode (no dropout) into `b`, with metadata
/// kmidi.model_family = generator and kmidi.profile = full | incremental.
void emit_midi_generator(onnx::ModelBuilder& b, MidiGeneratorImpl& model, bool incremental);

}  // namespace kmidi::models
