// Owns the one interface the training loop reads data through: global sample index → tokens.
// Implemented by the synthetic stream (synthetic.h) and by token windows of a prepared corpus (token_windows.h).
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace llama2 {

class SampleSource {
 public:
  virtual ~SampleSource() = default;
  // Global samples [first, first + count) → [count, seq_len + 1] int64: inputs [:, :-1], targets [:, 1:].
  virtual at::Tensor samples(int64_t first, int64_t count) const = 0;
};

// The samples a (dp rank, micro-step) pair takes of optimizer step `step` (0-based): the step consumes
// global samples [step·G, (step+1)·G), G = batch·accum·dp, and rank r's micro-step u takes block r·accum + u.
int64_t first_sample(int64_t step, int64_t micro_step, int64_t dp_rank, int64_t batch, int64_t accum, int64_t dp);

}  // namespace llama2
