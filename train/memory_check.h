// memory_check.h — refuse, before step 1, a run whose memory plan cannot fit.
//
// The CPU backend's arenas are mapped at construction but the pages of most of
// them (activations above all) are first touched in step 1, so a plan larger
// than the machine would otherwise end in the kernel's OOM killer mid-step.
// After the model and the engine are built, check_memory_plan compares what
// the plan still has to touch (its total less what the process grew by since
// `rss_before`) with what the machine can give: /proc/meminfo's MemAvailable,
// capped by the cgroup v2 limit (memory.max − memory.current, as under Slurm
// or a container). VITSCALE_MEMORY_AVAILABLE_MIB overrides that figure (to
// leave room for other jobs, or to test the check). Ranks on one node share
// the figure; each checks its own plan.
#pragma once

#include <cstddef>
#include <optional>

#include "runtime/vit_model.h"

namespace vitscale::train {

std::size_t resident_bytes();                         // this process's VmRSS (0 where unknown)
std::optional<std::size_t> available_host_bytes();    // nullopt where unknown
// Throws ConfigError naming the plan's rows, what is left to touch and what
// is available.
void check_memory_plan(const MemoryPlan& plan, std::size_t rss_before, int rank);

}  // namespace vitscale::train
