// Owns the samples of a prepared corpus: its split's shards memory-mapped as one token stream, cut into
// windows of seq_len + 1 tokens that overlap by one (every token is a target once), visited in an
// order that is a function of (seed, epoch) alone. Resuming needs only the consumed sample count.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "llama2/data/samples.h"
#include "llama2/data/token_shard.h"

namespace llama2 {

class TokenWindows : public SampleSource {
 public:
  // `shuffle` false: windows in corpus order (the validation split). BadInput if the split holds fewer
  // than one window or a shard is bad.
  TokenWindows(const std::string& dir, const SplitIndex& split, int64_t seq_len, int64_t model_vocab, uint64_t seed,
               bool shuffle);

  int64_t windows() const { return windows_; }
  int64_t tokens() const { return total_tokens_; }
  // Global sample g is window order(g / windows)[g % windows]: each epoch a new permutation.
  at::Tensor samples(int64_t first, int64_t count) const override;

 private:
  int64_t window_of(int64_t sample) const;
  void read(int64_t start, int64_t count, int64_t* out) const;

  std::vector<MappedShard> shards_;
  std::vector<int64_t> shard_first_;  // global index of each shard's first token
  int64_t total_tokens_ = 0, seq_len_, windows_ = 0;
  uint64_t seed_;
  bool shuffle_;
  mutable std::mutex order_mutex_;
  mutable int64_t order_epoch_ = -1;
  mutable std::vector<int64_t> order_;  // the permutation of the cached epoch
};

}  // namespace llama2
