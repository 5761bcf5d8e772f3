#pragma once
// EMOPIA 1.0 (../shared/data/emopia) prepared by kmidi prepare with the
// project's own configs/prepare_emopia.yaml: shards with quadrant labels and
// the song-disjoint splits. Made once per build tree (keyed by the config's
// hash) and shared by every test process.

#include <string>

namespace kmidi::test {

/// The prepared folder (train.h5, validation.h5, test.h5, tokenizer.json).
std::string emopia_prepared_dir();
/// The folder of EMOPIA's MIDI files (the shards' sources are relative to it).
std::string emopia_midi_root();

}  // namespace kmidi::test
