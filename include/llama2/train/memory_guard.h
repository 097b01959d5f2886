// Owns the memory guard: before the model is allocated, `plan`'s predicted peak RSS per rank, times the ranks on
// this node, against what the node and the process can have (MemAvailable, a cgroup v2/v1 limit, RLIMIT_AS/DATA).
#pragma once
#include <cstdint>
#include <string>

namespace llama2 {

struct MemoryPlan;

// Why the layout cannot fit ("" when it fits): predicted against available, and which limit binds. `local_ranks`:
// ranks of this job on this node.
std::string memory_overflow(const MemoryPlan& per_rank, int local_ranks);

// BadInput when the layout cannot fit: memory_overflow's reason and the changes that shrink each part of the
// prediction.
void check_memory_fits(const MemoryPlan& per_rank, int local_ranks);

}  // namespace llama2
