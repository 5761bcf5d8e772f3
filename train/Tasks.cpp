#include "train/Tasks.h"

#include <mutex>

namespace kmidi::train {
namespace {

/// Adds each model family under the name a job config's `task:` key uses:
///   registry.add<FamilyJobSections>("family_name", "one-line description",
///       [](FamilyJobSections& sections, const TaskContext& context) { return std::make_unique<FamilyTask>(...); });
/// No family implements train::Task on this branch yet; each adds its line here.
void register_builtin_tasks(TaskRegistry& registry) { (void)registry; }

}  // namespace

const TaskRegistry& builtin_tasks() {
  static TaskRegistry registry;
  static std::once_flag once;
  std::call_once(once, [] { register_builtin_tasks(registry); });
  return registry;
}

}  // namespace kmidi::train
