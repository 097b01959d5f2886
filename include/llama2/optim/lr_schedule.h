// Owns the learning-rate schedules: linear warmup, then linear decay to 0 (the recipe's) or cosine to min_lr.
#pragma once
#include <cstdint>
#include <string>

namespace llama2 {

struct LrSchedule {
  double peak = 3e-4;
  double min_lr = 0;
  int64_t warmup_steps = 0;
  int64_t max_steps = 1;
  std::string kind = "linear";  // "linear" | "cosine"

  // Learning rate for optimizer step `step` (1-based): peak·step/warmup during warmup, then the decay.
  double at(int64_t step) const;
};

}  // namespace llama2
