// Windows of a memory-mapped token stream, shuffled per epoch by (seed, epoch).
#include "llama2/data/token_windows.h"

#include <algorithm>
#include <numeric>
#include <random>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "llama2/util/errors.h"

namespace llama2 {

TokenWindows::TokenWindows(const std::string& dir, const SplitIndex& split, int64_t seq_len, int64_t model_vocab,
                           uint64_t seed, bool shuffle)
    : seq_len_(seq_len), seed_(seed), shuffle_(shuffle) {
  for (const std::string& name : split.shards) {
    shards_.emplace_back(dir + "/" + name, model_vocab);
    shard_first_.push_back(total_tokens_);
    total_tokens_ += shards_.back().tokens();
  }
  if (total_tokens_ != split.tokens)
    throw BadInput(fmt::format("{}/index.json: the index says {} tokens but the shards hold {}", dir, split.tokens,
                               total_tokens_));
  windows_ = total_tokens_ > seq_len ? (total_tokens_ - 1) / seq_len : 0;
  if (windows_ == 0)
    throw BadInput(fmt::format("--data_dir = {}: {} tokens make no window of --seq_len {} + 1 tokens", dir,
                               total_tokens_, seq_len));
}

int64_t TokenWindows::window_of(int64_t sample) const {
  const int64_t epoch = sample / windows_, position = sample % windows_;
  if (!shuffle_) return position;
  std::lock_guard<std::mutex> lock(order_mutex_);
  if (epoch != order_epoch_) {
    order_.resize(static_cast<size_t>(windows_));
    std::iota(order_.begin(), order_.end(), 0);
    std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch));
    std::shuffle(order_.begin(), order_.end(), rng);
    order_epoch_ = epoch;
  }
  return order_[static_cast<size_t>(position)];
}

void TokenWindows::read(int64_t start, int64_t count, int64_t* out) const {
  size_t s = static_cast<size_t>(std::upper_bound(shard_first_.begin(), shard_first_.end(), start) -
                                 shard_first_.begin() - 1);
  while (count > 0) {
    const int64_t offset = start - shard_first_[s];
    const int64_t n = std::min(count, shards_[s].tokens() - offset);
    shards_[s].copy(offset, n, out);
    out += n;
    start += n;
    count -= n;
    ++s;
  }
}

at::Tensor TokenWindows::samples(int64_t first, int64_t count) const {
  at::Tensor out = at::empty({count, seq_len_ + 1}, at::kLong);
  for (int64_t i = 0; i < count; ++i)
    read(window_of(first + i) * seq_len_, seq_len_ + 1, out.data_ptr<int64_t>() + i * (seq_len_ + 1));
  return out;
}

}  // namespace llama2
