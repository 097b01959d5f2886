// Owns the synthetic token stream of `train --synthetic_data`: a seeded, learnable stream defined by
// global sample index, so any split of a global batch over ranks and micro-steps sees the same samples.
#pragma once
#include <cstdint>
#include <vector>

#include "llama2/data/samples.h"

namespace llama2 {

class SyntheticData : public SampleSource {
 public:
  // Tokens come from an alphabet of min(vocab_size, 512) ids; sample i starts at a token drawn from
  // (seed, i) and follows a fixed seeded permutation (a bigram chain), so the loss can fall far below ln(vocab).
  SyntheticData(int64_t vocab_size, int64_t seq_len, uint64_t seed);

  // Samples [first, first + count) → [count, seq_len + 1] int64 (inputs are [:, :-1], targets [:, 1:]).
  at::Tensor samples(int64_t first, int64_t count) const override;

 private:
  int64_t seq_len_;
  uint64_t seed_;
  std::vector<int64_t> next_;  // next_[t]: the token after t
};

}  // namespace llama2
