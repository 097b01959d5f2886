// Owns choosing the next token from logits: greedy, or sampled with temperature, top-k and top-p (nucleus) from
// a seeded generator, so a seed repeats its tokens on every rank and every run.
#pragma once
#include <cstdint>
#include <random>

#include <ATen/core/Tensor.h>

namespace llama2 {

struct SamplingOptions {
  double temperature = 0.8;  // 0: greedy (the most likely token)
  int64_t top_k = 0;         // > 0: only the k most likely tokens
  double top_p = 1.0;        // < 1: only the most likely tokens whose probabilities sum to at least p
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // logits [vocab] (any float dtype) → the chosen token id.
  int64_t next(const at::Tensor& logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 engine_;  // fully specified by the standard: the same draws everywhere
};

}  // namespace llama2
