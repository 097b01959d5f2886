// Owns the synthetic token streams of `train --synthetic_data`: seeded, learnable streams defined by global sample
// index, so any split of a global batch over ranks and micro-steps sees the same samples.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llama2/data/samples.h"

namespace llama2 {

// The copy task's alphabet: small enough that the tiny model learns the copy in a few hundred steps.
inline constexpr int64_t kCopyAlphabet = 64;

class SyntheticData : public SampleSource {
 public:
  // Tokens are drawn from (seed, sample index). `task`:
  //   "bigram": a start token among min(vocab_size, 512), then a fixed seeded permutation (a bigram chain):
  //             learnable without attention;
  //   "copy":   the window's first half random among min(vocab_size, kCopyAlphabet) tokens, its second half a copy
  //             of the first (token t = token t − half): predictable only by attending half a window back, so the
  //             loss falls from ln(alphabet) to about half of it only with working causal attention.
  SyntheticData(int64_t vocab_size, int64_t seq_len, uint64_t seed, const std::string& task);

  // Samples [first, first + count) → [count, seq_len + 1] int64 (inputs are [:, :-1], targets [:, 1:]).
  at::Tensor samples(int64_t first, int64_t count) const override;

 private:
  int64_t seq_len_;
  uint64_t seed_;
  bool copy_;
  std::vector<int64_t> next_;  // next_[t]: the token after t (bigram)
};

}  // namespace llama2
