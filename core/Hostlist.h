#pragma once
// Slurm's compact host and task-count notations, expanded. Torch-free.

#include <string>
#include <string_view>
#include <vector>

namespace kmidi::slurm {

/// Expands a Slurm hostlist expression into host names, in order:
/// "node[01-04,07],gpu5" -> node01 node02 node03 node04 node07 gpu5.
/// Zero padding follows the lower bound ("[08-10]" -> 08 09 10); several
/// bracket groups in one name expand as a product, the first varying slowest
/// ("r[1-2]n[1-2]" -> r1n1 r1n2 r2n1 r2n2). Throws UsageError naming the
/// expression and the offset of the problem.
std::vector<std::string> expand_hostlist(std::string_view expression);

/// Expands Slurm's tasks-per-node notation into one count per node:
/// "2(x3),1" -> 2 2 2 1. Throws UsageError naming the value.
std::vector<int> expand_tasks_per_node(std::string_view value);

}  // namespace kmidi::slurm
