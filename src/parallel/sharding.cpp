// Full ↔ TP-shard mapping of parameters, including fused (q|k|v, gate|up) and vocab-padded ones.
#include "llama2/parallel/sharding.h"

#include <ATen/ATen.h>

namespace llama2 {
namespace {

// Full sizes along spec.dim of the pieces each rank takes a 1/tp slice of.
std::vector<int64_t> part_sizes(const ShardSpec& spec, int64_t full_size) {
  if (spec.parts.empty() || spec.padded > 0) return {full_size};
  return spec.parts;
}

}  // namespace

at::Tensor shard(const at::Tensor& full, const ShardSpec& spec, int64_t tp, int64_t rank) {
  if (spec.replicated()) return full.clone();
  at::Tensor src = full;
  if (spec.padded > full.size(spec.dim)) {
    auto pad_sizes = full.sizes().vec();
    pad_sizes[spec.dim] = spec.padded - full.size(spec.dim);
    src = at::cat({full, at::zeros(pad_sizes, full.options())}, spec.dim);
  }
  std::vector<at::Tensor> pieces;
  int64_t offset = 0;
  for (int64_t part : part_sizes(spec, src.size(spec.dim))) {
    pieces.push_back(src.narrow(spec.dim, offset + rank * (part / tp), part / tp));
    offset += part;
  }
  return at::cat(pieces, spec.dim).contiguous();
}

at::Tensor unshard(const std::vector<at::Tensor>& shards, const ShardSpec& spec) {
  if (spec.replicated()) return shards.at(0).clone();
  const int64_t tp = static_cast<int64_t>(shards.size());
  std::vector<at::Tensor> pieces;
  int64_t offset = 0;
  for (int64_t part : part_sizes(spec, shards[0].size(spec.dim) * tp)) {
    for (int64_t r = 0; r < tp; ++r) pieces.push_back(shards[r].narrow(spec.dim, offset / tp, part / tp));
    offset += part;
  }
  at::Tensor full = at::cat(pieces, spec.dim);
  if (spec.padded > 0) full = full.narrow(spec.dim, 0, spec.parts.at(0));
  return full.contiguous();
}

}  // namespace llama2
