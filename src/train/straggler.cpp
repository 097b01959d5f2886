// The straggler report: one all-gather of a double per step; the slow-link report from the heartbeats' round trips.
#include "llama2/train/straggler.h"

#include <algorithm>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "llama2/dist/communicator.h"
#include "llama2/dist/status_board.h"

namespace llama2 {

ComputeSpread compute_spread(double compute_s, const Communicator& world) {
  const at::Tensor all = world.all_gather(at::full({1}, compute_s, at::kDouble));  // [world]
  ComputeSpread spread;
  spread.slowest_rank = static_cast<int>(all.argmax().item<int64_t>());
  spread.fastest_rank = static_cast<int>(all.argmin().item<int64_t>());
  spread.max_s = all[spread.slowest_rank].item<double>();
  spread.min_s = all[spread.fastest_rank].item<double>();
  return spread;
}

std::string ComputeSpread::straggler() const {
  if (max_s <= min_s * (1 + kStragglerShare) || max_s - min_s <= kStragglerMinS) return "";
  return fmt::format("straggler: rank {} computed for {:.3f} s this step, the fastest (rank {}) for {:.3f} s: {:.0f}% "
                     "slower",
                     slowest_rank, max_s, fastest_rank, min_s, 100 * (max_s / min_s - 1));
}

LinkSpread link_spread(const StatusBoard& board) {
  std::vector<std::vector<int>> ranks;  // [node]
  std::vector<double> rtts;             // [node]
  LinkSpread spread;
  for (int r = 0; r < board.world_size(); ++r) {
    const size_t node = std::find(spread.hosts.begin(), spread.hosts.end(), board.host(r)) - spread.hosts.begin();
    if (node == spread.hosts.size()) {
      spread.hosts.push_back(board.host(r));
      ranks.emplace_back();
      rtts.push_back(0);
    }
    ranks[node].push_back(r);
    rtts[node] = std::max(rtts[node], board.read(r).link_rtt_s);
  }
  const size_t slowest = std::max_element(rtts.begin(), rtts.end()) - rtts.begin();
  spread.slowest_host = spread.hosts[slowest];
  spread.slowest_ranks = ranks[slowest];
  spread.max_s = rtts[slowest];
  std::sort(rtts.begin(), rtts.end());
  spread.median_s = rtts[(rtts.size() - 1) / 2];
  return spread;
}

std::string LinkSpread::slow_link() const {
  if (hosts.size() < 2 || max_s <= kSlowLinkMinS) return "";
  if (hosts.size() == 2)
    return fmt::format("slow link between hosts {} and {}: {:.1f} ms round trip (with 2 nodes, which end is slow "
                       "cannot be told)",
                       hosts[0], hosts[1], 1e3 * max_s);
  if (max_s <= kSlowLinkFactor * median_s) return "";
  return fmt::format("slow link: host {} (ranks {}): {:.1f} ms round trip to its nearest other node, {:.1f} ms for the "
                     "median node; the job's collectives wait on its network",
                     slowest_host, fmt::join(slowest_ranks, ", "), 1e3 * max_s, 1e3 * median_s);
}

}  // namespace llama2
