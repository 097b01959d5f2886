// Owns how each full (tp=1) parameter maps to its shard on TP rank r: one function used by init,
// tests and checkpoints, so one --seed gives the same full model at any TP degree.
#pragma once
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace llama2 {

// A parameter is replicated (dim < 0) or split along `dim`. Fused parameters list their `parts`
// (full sizes along dim, e.g. q, k, v rows); each part is split into tp pieces and rank r takes piece r
// of every part, concatenated. `padded` > 0 pads the (single-part) dim with zeros to that size first.
struct ShardSpec {
  int64_t dim = -1;
  std::vector<int64_t> parts;
  int64_t padded = 0;

  bool replicated() const { return dim < 0; }
};

// The shard of `full` held by TP rank `rank` of `tp`.
at::Tensor shard(const at::Tensor& full, const ShardSpec& spec, int64_t tp, int64_t rank);

// Inverse of shard(): the full tensor from the tp shards in rank order (padding dropped).
at::Tensor unshard(const std::vector<at::Tensor>& shards, const ShardSpec& spec);

}  // namespace llama2
