#pragma once
// The product's task registry: every model family kmidi can train, by name.

#include "train/Task.h"

namespace kmidi::train {

/// The registry of built-in tasks, filled once (std::call_once) by
/// register_builtin_tasks() in train/tasks/Tasks.cpp: the one place where a model
/// family is added.
const TaskRegistry& builtin_tasks();

}  // namespace kmidi::train
