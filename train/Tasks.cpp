#include "train/Tasks.h"

#include <mutex>

namespace kmidi::train {
namespace {

/// Adds each model family under the name a job config's `task:` key uses:
///   registry.add<GeneratorJobConfig>("midi_generator", "decoder-only MIDI transformer",
///       [](GeneratorJobConfig& c, const TaskContext& ctx) { return make_generator_task(c, ctx); });
/// (No family is part of this library yet; each one adds its line here.)
void register_builtin_tasks(TaskRegistry& registry) { (void)registry; }

}  // namespace

const TaskRegistry& builtin_tasks() {
  static TaskRegistry registry;
  static std::once_flag once;
  std::call_once(once, [] { register_builtin_tasks(registry); });
  return registry;
}

}  // namespace kmidi::train
