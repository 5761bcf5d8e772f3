#include "train/Tasks.h"

#include <mutex>

#include "train/tasks/GrooveTask.h"

namespace kmidi::train {
namespace {

/// Adds each model family under the name a job config's `task:` key uses:
///   registry.add<FamilyJobSections>("family_name", "one-line description",
///       [](FamilyJobSections& sections, const TaskContext& context) { return std::make_unique<FamilyTask>(...); });
void register_builtin_tasks(TaskRegistry& registry) {
  registry.add<GrooveTaskConfig>("groove", "drum humanizer: quantized hits to timing offsets and velocities (Groove MIDI)",
                                 [](GrooveTaskConfig& c, const TaskContext& ctx) { return std::make_unique<GrooveTask>(c, ctx); });
}

}  // namespace

const TaskRegistry& builtin_tasks() {
  static TaskRegistry registry;
  static std::once_flag once;
  std::call_once(once, [] { register_builtin_tasks(registry); });
  return registry;
}

}  // namespace kmidi::train
