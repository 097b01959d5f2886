// Synthetic bigram-chain samples addressed by global sample index.
#include "llama2/data/synthetic.h"

#include <algorithm>
#include <numeric>
#include <random>

#include <ATen/ATen.h>

namespace llama2 {

SyntheticData::SyntheticData(int64_t vocab_size, int64_t seq_len, uint64_t seed)
    : seq_len_(seq_len), seed_(seed), next_(static_cast<size_t>(std::min<int64_t>(vocab_size, 512))) {
  std::iota(next_.begin(), next_.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(next_.begin(), next_.end(), rng);
}

at::Tensor SyntheticData::samples(int64_t first, int64_t count) const {
  at::Tensor out = at::empty({count, seq_len_ + 1}, at::kLong);
  int64_t* data = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(first + i));
    int64_t token = static_cast<int64_t>(rng() % next_.size());
    for (int64_t t = 0; t <= seq_len_; ++t) {
      data[i * (seq_len_ + 1) + t] = token;
      token = next_[static_cast<size_t>(token)];
    }
  }
  return out;
}

}  // namespace llama2
