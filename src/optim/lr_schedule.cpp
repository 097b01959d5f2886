// Warmup + linear/cosine decay.
#include "llama2/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace llama2 {

double LrSchedule::at(int64_t step) const {
  if (warmup_steps > 0 && step <= warmup_steps) return peak * static_cast<double>(step) / warmup_steps;
  const int64_t span = std::max<int64_t>(1, max_steps - warmup_steps);
  const double progress = std::clamp(static_cast<double>(step - warmup_steps) / span, 0.0, 1.0);
  if (kind == "cosine") return min_lr + (peak - min_lr) * 0.5 * (1 + std::cos(M_PI * progress));
  return min_lr + (peak - min_lr) * (1 - progress);
}

}  // namespace llama2
