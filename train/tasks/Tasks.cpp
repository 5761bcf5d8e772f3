#include "train/tasks/Tasks.h"

#include <memory>
#include <mutex>

#include "train/tasks/EmotionTask.h"
#include "train/tasks/GrooveTask.h"
#include "train/tasks/MidiGeneratorTask.h"
#include "train/tasks/SpectocloudTask.h"

namespace kmidi::train {
namespace {

/// Adds each model family under the name a job config's `task:` key uses:
///   registry.add<FamilyJobSections>("family_name", "one-line description",
///       [](FamilyJobSections& sections, const TaskContext& context) { return std::make_unique<FamilyTask>(...); });
void register_builtin_tasks(TaskRegistry& registry) {
  registry.add<MidiGeneratorJobConfig>(
      "midi_generator", "decoder-only transformer over MIDI tokens, conditioned on a 64-d emotion vector",
      [](MidiGeneratorJobConfig& c, const TaskContext& context) { return std::make_unique<MidiGeneratorTask>(c, context); });
  registry.add<EmotionTaskConfig>(
      "emotion", "valence/arousal and Russell quadrant from MIDI tokens and/or features (EMOPIA)",
      [](EmotionTaskConfig& c, const TaskContext& context) { return std::make_unique<EmotionTask>(c, context); });
  registry.add<GrooveTaskConfig>("groove", "drum humanizer: quantized hits to timing offsets and velocities (Groove MIDI)",
                                 [](GrooveTaskConfig& c, const TaskContext& ctx) { return std::make_unique<GrooveTask>(c, ctx); });
  registry.add<SpectocloudTaskConfig>("spectocloud", "mel excerpt + emotion + midi_features to a point cloud",
      [](SpectocloudTaskConfig& c, const TaskContext& ctx) { return std::make_unique<SpectocloudTask>(c, ctx); });
}

}  // namespace

const TaskRegistry& builtin_tasks() {
  static TaskRegistry registry;
  static std::once_flag once;
  std::call_once(once, [] { register_builtin_tasks(registry); });
  return registry;
}

}  // namespace kmidi::train
