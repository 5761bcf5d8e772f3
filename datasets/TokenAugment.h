#pragma once
// Training-time transposition of token rows: every Pitch token of a row moves
// by the same number of semitones, drawn per (seed, epoch, item) alone so that
// a resumed run and any number of ranks see the same shifts. Key is a
// convention of a recording, not its character: a generator shown each clip in
// several keys has to learn mode and texture from the emotion vector rather
// than absolute pitch (EMOPIA has 876 training clips).

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/tokenizer/Vocabulary.h"

namespace kmidi::data {

/// Semitone range [lowest, highest] of training transposition; {0, 0}: off.
struct TranspositionRange {
  int lowest = 0;
  int highest = 0;
  bool off() const { return lowest == 0 && highest == 0; }
};

/// Why `range` (a config's [lowest, highest]) is not a transposition range
/// (two values, lowest <= highest, each within an octave), or "".
std::string transpose_problem(const std::vector<int64_t>& range);

/// The shift of item `index` in `epoch`: uniform over [lowest, highest].
int draw_transposition(const TranspositionRange& range, uint64_t seed, int64_t epoch, uint64_t index);

/// Adds `shift` to every id of `ids` inside `pitch` (the vocabulary's Pitch
/// block), first moving `shift` towards 0 as far as needed for every pitch
/// to stay inside the block. Returns the shift applied.
int transpose_pitches(int32_t* ids, size_t count, tokenizer::IdRange pitch, int shift);

}  // namespace kmidi::data
