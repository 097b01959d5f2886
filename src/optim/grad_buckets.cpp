// Bucketed, non-blocking DP gradient reduction that overlaps backward.
#include "llama2/optim/grad_buckets.h"

#include <algorithm>
#include <utility>

#include <ATen/ATen.h>

#include "llama2/util/phases.h"

namespace llama2 {

GradientBuckets::GradientBuckets(const at::Tensor& flat_grads, const FlatLayout& layout, int64_t bucket_numel,
                                 const Communicator& dp, bool zero_1)
    : flat_grads_(flat_grads), layout_(layout), by_offset_(layout.order().rbegin(), layout.order().rend()),
      bucket_numel_(std::max<int64_t>(1, bucket_numel)), dp_(dp), zero_1_(zero_1) {}

void GradientBuckets::start() {
  started_ = true;
  ready_.assign(by_offset_.size(), false);
  next_ = 0;
  pending_top_ = flat_grads_.numel();  // the padding above the last parameter travels with the first bucket
  result_ = zero_1_ && dp_.size() > 1 ? at::empty({layout_.shard_numel()}, flat_grads_.options())
                                      : flat_grads_;
}

void GradientBuckets::launch(int64_t begin, int64_t end) {
  at::Tensor bucket = flat_grads_.narrow(0, begin, end - begin);
  if (dp_.size() == 1) return;
  if (!zero_1_) {
    in_flight_.push_back(dp_.all_reduce_async(bucket));
    return;
  }
  std::vector<int64_t> counts(dp_.size());
  for (int r = 0; r < dp_.size(); ++r) counts[r] = layout_.overlap(begin, end, r);
  const int64_t mine = std::clamp(begin - layout_.shard_begin(dp_.rank()), int64_t{0}, layout_.shard_numel());
  at::Tensor out = result_.narrow(0, mine, counts[dp_.rank()]);
  in_flight_.push_back(dp_.reduce_scatter_async(bucket, out, counts));
}

void GradientBuckets::advance(int64_t min_bucket, int64_t floor) {
  while (next_ < by_offset_.size() && ready_[by_offset_[next_]] && layout_.offset(by_offset_[next_]) >= floor) {
    const int64_t bottom = layout_.offset(by_offset_[next_++]);
    if (pending_top_ - bottom >= min_bucket) {
      launch(bottom, pending_top_);
      pending_top_ = bottom;
    }
  }
}

void GradientBuckets::mark_ready(const std::vector<size_t>& params) {
  if (!started_) start();
  for (size_t i : params) ready_.at(i) = true;
  advance(bucket_numel_, layout_.norm_numel());
  for (PendingCollective& c : in_flight_) c.test();
}

at::Tensor GradientBuckets::finish() {
  ScopedPhase phase(Phase::GradReduce);
  if (!started_) start();
  ready_.assign(ready_.size(), true);
  advance(INT64_MAX, 0);  // everything left becomes one bucket
  if (pending_top_ > 0) launch(0, pending_top_);
  for (PendingCollective& c : in_flight_) c.wait();
  in_flight_.clear();
  started_ = false;
  return std::exchange(result_, at::Tensor()).to(at::kFloat);
}

}  // namespace llama2
