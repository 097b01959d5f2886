// Owns the ZeRO-1 index spaces (Megatron's distributed optimizer): where each parameter's TP shard sits in the
// flat buffer (RMSNorm weights first), the padding to a multiple of the optimizer shards, and each shard's range.
#pragma once
#include <cstdint>
#include <vector>

namespace llama2 {

struct Parameter;

class FlatLayout {
 public:
  // `params` at TP degree `tp` (shapes from local_shape), cut into `shards` equal optimizer shards (dp with
  // ZeRO-1, else 1).
  FlatLayout(const std::vector<Parameter>& params, int64_t tp, int64_t shards);

  int64_t offset(size_t param) const { return offsets_[param]; }  // parameter's first element in the buffer
  const std::vector<int64_t>& offsets() const { return offsets_; }
  const std::vector<size_t>& order() const { return order_; }      // parameters by offset
  int64_t numel() const { return numel_; }            // all parameters' elements
  int64_t norm_numel() const { return norm_numel_; }  // [0, norm_numel): the RMSNorm weights
  int64_t padded() const { return padded_; }          // numel rounded up to a multiple of shards: buffer length
  int64_t shards() const { return shards_; }
  int64_t shard_numel() const { return padded_ / shards_; }
  int64_t shard_begin(int64_t shard) const { return shard * shard_numel(); }
  int64_t shard_of(int64_t position) const { return position / shard_numel(); }  // the shard holding an element
  // Elements of the flat range [begin, end) that shard `shard` holds.
  int64_t overlap(int64_t begin, int64_t end, int64_t shard) const;

 private:
  std::vector<size_t> order_;
  std::vector<int64_t> offsets_;
  int64_t numel_ = 0, norm_numel_ = 0, shards_ = 1, padded_ = 0;
};

}  // namespace llama2
