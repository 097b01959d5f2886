// Owns the parallel layout: world = tp × dp, which rank holds which TP/DP coordinate, threads per rank.
// Pure arithmetic and validation; the communicators live in communicator.h.
#pragma once
#include <cstdint>
#include <string>

namespace llama2 {

struct ParallelLayout {
  int world = 1, rank = 0;
  int tp = 1, dp = 1;            // world == tp * dp
  int tp_rank = 0, dp_rank = 0;  // TP groups are consecutive ranks (inside a node); DP groups stride by tp
  int local_size = 1, local_rank = 0;  // ranks on this node
  int threads = 1;                     // intra-op threads of this rank

  // Validates and fills the coordinates. Throws BadInput when world is not a multiple of tp.
  static ParallelLayout make(int world, int rank, int tp, int local_size, int local_rank);
  std::string describe() const;
};

// Threads for one rank: `requested` if > 0, else cores of this node / ranks on this node (at least 1).
int default_threads(int requested, int local_size);

// Sets torch's and OpenMP's intra-op threads and, when the rank's CPU affinity (e.g. mpirun's
// --bind-to core) allows fewer CPUs than that, widens it to this rank's own block of cores.
// Returns a one-line description for the start-up log.
std::string apply_threads(const ParallelLayout& layout);

}  // namespace llama2
