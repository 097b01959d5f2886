// Owns the DP gradient reduction overlapped with backward: the flat gradient buffer cut into buckets at
// parameter boundaries, each reduced non-blocking in the gradients' dtype (ZeRO-1: reduce-scattered; else
// all-reduced in place) as soon as backward has finished all of its parameters, completed before the optimizer step.
#pragma once
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "llama2/dist/communicator.h"
#include "llama2/optim/flat_layout.h"

namespace llama2 {

class GradientBuckets {
 public:
  // flat_grads [layout.padded()] laid out by `layout` (whose shards are the DP ranks with ZeRO-1). A bucket is
  // launched once it holds at least `bucket_numel` elements; the norm weights [0, layout.norm_numel()) only by
  // finish() (with SP they are summed over TP first).
  GradientBuckets(const at::Tensor& flat_grads, const FlatLayout& layout, int64_t bucket_numel,
                  const Communicator& dp, bool zero_1);

  // Backward has finished these parameters' gradients: launch every bucket that is now complete, counting
  // down from the top of the flat buffer (the order backward produces them), and let earlier ones progress.
  void mark_ready(const std::vector<size_t>& params);

  // Launches what is left (all of it if nothing was marked), waits for everything and returns the DP sum in
  // fp32 (bf16 sums widened): this rank's ZeRO-1 shard [padded/dp], or the whole buffer [padded]. Resets for the
  // next step.
  at::Tensor finish();
  bool in_progress() const { return started_; }  // buckets launched and not yet finished

 private:
  void start();
  void advance(int64_t min_bucket, int64_t floor);  // moves ready parameters into buckets
  void launch(int64_t begin, int64_t end);

  at::Tensor flat_grads_;             // [padded] fp32 or bf16
  const FlatLayout& layout_;
  std::vector<size_t> by_offset_;     // parameters, highest offset first
  int64_t bucket_numel_;
  const Communicator& dp_;
  bool zero_1_;
  // One reduction in progress:
  bool started_ = false;
  std::vector<bool> ready_;
  size_t next_ = 0;                   // by_offset_[next_] is the highest parameter not yet in a bucket
  int64_t pending_top_ = 0;           // [offset of by_offset_[next_ - 1], pending_top_) waits for more
  at::Tensor result_;                 // the reduced output: ZeRO-1's shard, or flat_grads_ itself
  std::vector<PendingCollective> in_flight_;
};

}  // namespace llama2
