// Owns the straggler report: each rank's compute time per step (the step less its waits in collectives),
// gathered over the world; the fastest and the slowest go into the metrics, and a slow rank is named in the log.
#pragma once
#include <string>

namespace llama2 {

class Communicator;

// A rank whose compute time exceeds the fastest's by more than this share, and by more than kStragglerMinS (the
// jitter of millisecond steps), is named in the log's straggler line.
inline constexpr double kStragglerShare = 0.2, kStragglerMinS = 0.05;

struct ComputeSpread {
  double min_s = 0, max_s = 0;
  int slowest_rank = 0, fastest_rank = 0;
  // "rank R computed for X s this step, the fastest (rank F) for Y s: Z% slower", or "" within the bounds above.
  std::string straggler() const;
};

// Collective over `world`: every rank passes its own compute seconds and gets the spread.
ComputeSpread compute_spread(double compute_s, const Communicator& world);

}  // namespace llama2
