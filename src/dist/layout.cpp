// ParallelLayout arithmetic and per-rank thread placement.
#include "llama2/dist/layout.h"

#include <sched.h>
#include <omp.h>

#include <algorithm>
#include <thread>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include "llama2/util/errors.h"

namespace llama2 {

ParallelLayout ParallelLayout::make(int world, int rank, int tp, int local_size, int local_rank) {
  if (tp < 1 || world % tp != 0)
    throw BadInput(fmt::format("--tensor_parallel_size = {} is invalid; expected a divisor of the world size {}",
                               tp, world));
  ParallelLayout l;
  l.world = world;
  l.rank = rank;
  l.tp = tp;
  l.dp = world / tp;
  l.tp_rank = rank % tp;
  l.dp_rank = rank / tp;
  l.local_size = local_size;
  l.local_rank = local_rank;
  return l;
}

std::string ParallelLayout::describe() const {
  return fmt::format("world {} = tp {} x dp {}; rank {} (tp_rank {}, dp_rank {}); {} ranks on this node; "
                     "{} threads per rank",
                     world, tp, dp, rank, tp_rank, dp_rank, local_size, threads);
}

int default_threads(int requested, int local_size) {
  if (requested > 0) return requested;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, local_size));
}

std::string apply_threads(const ParallelLayout& layout) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  std::string placement = "affinity unchanged";
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && CPU_COUNT(&allowed) < layout.threads) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int first = (layout.local_rank * layout.threads) % cores;
    cpu_set_t wanted;
    CPU_ZERO(&wanted);
    for (int i = 0; i < layout.threads; ++i) CPU_SET((first + i) % cores, &wanted);
    placement = sched_setaffinity(0, sizeof(wanted), &wanted) == 0
                    ? fmt::format("affinity widened from {} to cores {}..{}", CPU_COUNT(&allowed), first,
                                  first + layout.threads - 1)
                    : "affinity could not be widened";
  }
  omp_set_num_threads(layout.threads);
  at::set_num_threads(layout.threads);
  return fmt::format("{} intra-op threads (torch and OpenMP), {}", layout.threads, placement);
}

}  // namespace llama2
