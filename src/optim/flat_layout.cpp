// The flat buffer's index spaces, computed once from the parameter layout.
#include "llama2/optim/flat_layout.h"

#include <algorithm>

#include "llama2/model/llama.h"

namespace llama2 {

FlatLayout::FlatLayout(const std::vector<Parameter>& params, int64_t tp, int64_t shards)
    : offsets_(params.size()), shards_(shards) {
  for (size_t i = 0; i < params.size(); ++i) if (params[i].is_norm) order_.push_back(i);
  for (size_t i = 0; i < params.size(); ++i) if (!params[i].is_norm) order_.push_back(i);
  for (size_t i : order_) {
    offsets_[i] = numel_;
    int64_t n = 1;
    for (int64_t d : local_shape(params[i], tp)) n *= d;
    numel_ += n;
    if (params[i].is_norm) norm_numel_ += n;
  }
  padded_ = (numel_ + shards - 1) / shards * shards;
}

int64_t FlatLayout::overlap(int64_t begin, int64_t end, int64_t shard) const {
  return std::max<int64_t>(0, std::min(end, shard_begin(shard + 1)) - std::max(begin, shard_begin(shard)));
}

}  // namespace llama2
