// Owns the straggler report: each rank's compute time per step (the step less its waits in collectives), gathered
// over the world, with a slow rank named in the log; and the slow-link report, a node whose network lags the others'.
#pragma once
#include <string>
#include <vector>

namespace llama2 {

class Communicator;
class StatusBoard;

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

// A node whose round trip to its nearest other node (each rank's heartbeat measures it) is over kSlowLinkFactor times
// the median node's and over kSlowLinkMinS is named; with two nodes, which end of their link is slow cannot be told
// and the link is named. kSlowLinkMinS is far above a LAN's or a loaded host's scheduling delay (< 5 ms).
inline constexpr double kSlowLinkFactor = 5, kSlowLinkMinS = 0.02;

struct LinkSpread {
  std::vector<std::string> hosts;  // the job's nodes, in rank order
  std::string slowest_host;        // the node with the slowest round trip, its ranks, and that round trip
  std::vector<int> slowest_ranks;
  double max_s = 0, median_s = 0;  // over nodes (the lower median: with 3 nodes, a healthy one)
  // "slow link: host h2 (ranks 1, 3): 120.0 ms round trip to its nearest other node, 0.4 ms for the median node; ...",
  // or "" within the bounds above or with one node.
  std::string slow_link() const;
};

// The round trips of the rows `board` has heard, node by node (a node's: its slowest rank's; they share its link).
LinkSpread link_spread(const StatusBoard& board);

}  // namespace llama2
