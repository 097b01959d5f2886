// The straggler report: one all-gather of a double per step.
#include "llama2/train/straggler.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "llama2/dist/communicator.h"

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

}  // namespace llama2
