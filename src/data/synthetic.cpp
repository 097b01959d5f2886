// Synthetic samples addressed by global sample index: the bigram chain and the copy task.
#include "llama2/data/synthetic.h"

#include <algorithm>
#include <numeric>
#include <random>

#include <ATen/ATen.h>

namespace llama2 {

SyntheticData::SyntheticData(int64_t vocab_size, int64_t seq_len, uint64_t seed, const std::string& task)
    : seq_len_(seq_len), seed_(seed), copy_(task == "copy"),
      next_(static_cast<size_t>(std::min<int64_t>(vocab_size, 512))) {
  std::iota(next_.begin(), next_.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(next_.begin(), next_.end(), rng);
}

at::Tensor SyntheticData::samples(int64_t first, int64_t count) const {
  const int64_t length = seq_len_ + 1, half = length / 2, alphabet = static_cast<int64_t>(next_.size());
  const int64_t copy_alphabet = std::min(alphabet, kCopyAlphabet);
  at::Tensor out = at::empty({count, length}, at::kLong);
  for (int64_t i = 0; i < count; ++i) {
    std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(first + i));
    int64_t* row = out.data_ptr<int64_t>() + i * length;
    if (copy_) {
      for (int64_t t = 0; t < length; ++t)
        row[t] = t < half ? static_cast<int64_t>(rng() % static_cast<uint64_t>(copy_alphabet)) : row[t - half];
      continue;
    }
    int64_t token = static_cast<int64_t>(rng() % static_cast<uint64_t>(alphabet));
    for (int64_t t = 0; t < length; ++t) {
      row[t] = token;
      token = next_[static_cast<size_t>(token)];
    }
  }
  return out;
}

}  // namespace llama2
