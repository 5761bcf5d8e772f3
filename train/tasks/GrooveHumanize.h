#pragma once
// `kmidi humanize`: a trained groove model applied to any MIDI drum part.
//
// The drum notes (channel 10) are quantized to the 16th-note grid of the
// file's tempo map (DrumGrid.h) and cut into windows of the model's training
// length (the last one padded); the model predicts an offset and a velocity
// for every (step, class) cell with a hit. Every mapped drum note then starts
// at its grid time plus its cell's offset (so a note moves by less than half
// a step from the grid, and a quantized part gets a human feel) and takes its
// cell's velocity; its length in ticks is kept, clipped so that it ends
// before the next note of the same pitch, channel and track starts. Notes of
// other channels and drum pitches outside the nine classes are unchanged, so
// the output has exactly the input's notes. PPQ files only.

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/midi/Score.h"
#include "models/GrooveModel.h"

namespace kmidi::train {

/// A groove model rebuilt from a checkpoint alone: its config.yaml gives the
/// architecture and window length, its weights (the EMA average when the
/// checkpoint has one and `use_ema`) are loaded. Throws DataError for an
/// unreadable checkpoint, UsageError for one of another task.
struct GrooveCheckpoint {
  models::GrooveModel model{nullptr};  ///< eval mode, on the CPU
  int64_t window_steps = 32;
  std::vector<std::string> players;    ///< player ids 1..N, in order (model.players); empty: none
  int64_t step = 0;                    ///< training step of the checkpoint
  bool used_ema = false;
};
GrooveCheckpoint load_groove_checkpoint(const std::string& path, bool use_ema = true);

struct HumanizeStats {
  int64_t notes = 0;           ///< notes in the score (unchanged count)
  int64_t humanized = 0;       ///< drum notes given new timing and velocity
  int64_t windows = 0;
  double mean_abs_offset_ms = 0.0;  ///< over humanized notes, from the tempo map
};

/// The player id of `name` in the checkpoint's list (1-based); "" gives 0,
/// any player. Throws UsageError listing the known players.
int64_t player_id(const GrooveCheckpoint& checkpoint, const std::string& name);

/// The humanized copy of `score`, in the feel of `player` (0: any player).
/// Throws UsageError for SMPTE-timed scores or a player the model lacks.
midi::Score humanize(const midi::Score& score, models::GrooveModelImpl& model, int64_t window_steps,
                     HumanizeStats* stats = nullptr, int64_t player = 0);

}  // namespace kmidi::train
