// Collectives of every dtype against hand-computed values, the bucketed gradient reduction against the
// hand-computed sum, and the five TP/SP mappings' forward and backward. Runs under `mpirun -np 2` and `-np 4`.
#include <ATen/ATen.h>

#include "llama2/model/llama.h"
#include "llama2/optim/grad_buckets.h"
#include "llama2/parallel/mappings.h"
#include "llama2/util/errors.h"
#include "test_support.h"

namespace llama2::testing {
namespace {

const Communicator& world() { return context().world(); }

class Collectives : public ::testing::TestWithParam<at::ScalarType> {};

// Rank r holds (r + 1)·[1, 2, ..., 6]: small integers, exact in every dtype, bf16 included.
at::Tensor ramp(at::ScalarType dtype) {
  return (at::arange(1, 7, at::kDouble) * (world().rank() + 1)).to(dtype);
}

TEST_P(Collectives, AllReduceSumAndMax) {
  const int n = world().size();
  at::Tensor sum = ramp(GetParam()), max = ramp(GetParam());
  world().all_reduce(sum);
  EXPECT_TRUE(at::equal(sum.to(at::kDouble), at::arange(1, 7, at::kDouble) * (n * (n + 1) / 2)));
  if (GetParam() == at::kBFloat16) {  // no caller takes a bf16 max
    EXPECT_THROW(world().all_reduce(max, ReduceOp::Max), RuntimeFailure);
    return;
  }
  world().all_reduce(max, ReduceOp::Max);
  EXPECT_TRUE(at::equal(max.to(at::kDouble), at::arange(1, 7, at::kDouble) * n));
}

TEST_P(Collectives, AllGatherReduceScatter) {
  const int n = world().size(), r = world().rank();
  const at::Tensor gathered = world().all_gather(at::full({2, 3}, r, at::kDouble).to(GetParam()));
  ASSERT_EQ(gathered.size(0), 2 * n);
  for (int i = 0; i < n; ++i) EXPECT_TRUE(at::equal(gathered.narrow(0, 2 * i, 2).to(at::kDouble), at::full({2, 3}, i, at::kDouble)));

  // Rank r contributes (r + 1) at every element of [n·2, 3]; each block of the result is Σ(r + 1).
  const at::Tensor scattered = world().reduce_scatter(at::full({2 * n, 3}, r + 1, at::kDouble).to(GetParam()));
  EXPECT_TRUE(at::equal(scattered.to(at::kDouble), at::full({2, 3}, n * (n + 1) / 2, at::kDouble)));
}

// In place: this rank's block [2, 3] of r at 2·r, the others' blocks -7 until gathered.
TEST_P(Collectives, AllGatherInPlace) {
  const int n = world().size(), r = world().rank();
  at::Tensor t = at::full({2 * n, 3}, -7, at::kDouble).to(GetParam());
  t.narrow(0, 2 * r, 2).fill_(r);
  world().all_gather_in_place(t);
  for (int i = 0; i < n; ++i)
    EXPECT_TRUE(at::equal(t.narrow(0, 2 * i, 2).to(at::kDouble), at::full({2, 3}, i, at::kDouble))) << i;
  at::Tensor odd = at::zeros({2 * n + 1}, at::kDouble).to(GetParam());
  EXPECT_THROW(world().all_gather_in_place(odd), RuntimeFailure);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, Collectives, ::testing::Values(at::kFloat, at::kDouble, at::kBFloat16, at::kLong));

TEST(Collectives, Bf16SumIsWithinOneUlpOfTheExactSum) {
  // 1 + (r+1)/256 is not exact in bf16, nor are the partial sums: the user-defined op adds in fp32 and
  // rounds each partial sum to bf16, so the result is within one bf16 ulp (2^-7 relative) of the exact sum.
  at::Tensor x = at::full({8}, 1.0 + (world().rank() + 1) / 256.0, at::kDouble).to(at::kBFloat16);
  const double exact = world().all_gather(x.to(at::kDouble)).sum().item<double>() / 8;
  world().all_reduce(x);
  EXPECT_NEAR(x[0].item<float>(), exact, exact / 128);
}

TEST(Collectives, NonContiguousInputIsAnError) {
  at::Tensor t = at::zeros({4, 4}).t();
  EXPECT_THROW(world().all_reduce(t), RuntimeFailure);
  EXPECT_THROW(world().all_gather(t), RuntimeFailure);
}

// Each mapping: forward on x = rank-dependent [n·2, 3], backward of sum(y · g) with g = (rank+1)·ones.
// Seven "parameters" of different sizes tile a flat buffer of 40 (a multiple of 2 and 4 ranks); rank r holds
// (r + 1)·(i + 1) at element i, so every element of the DP sum is (i + 1)·n(n+1)/2: exactly in fp32; bf16 buffers
// (--main_grad_dtype bf16) are reduced in bf16, whose pairwise sums above 256 round: within 2^-7 relative.
// Parameters are marked ready top-down in three batches, with buckets from 1 element (every parameter its
// own bucket, crossing ZeRO-1 shard boundaries) to all of them; [0, 5) is held for finish().
TEST(GradientBuckets, OverlappedReductionEqualsTheSumForAnyBucketSizeAndShard) {
  const int n = world().size(), r = world().rank();
  std::vector<Parameter> params;  // offsets 0, 5, 9, 17, 18, 26, 33; padding 39
  for (const int64_t size : {5, 4, 8, 1, 8, 7, 6})
    params.push_back({"p" + std::to_string(params.size()), at::Tensor(), {size}, ShardSpec{}, params.empty()});
  const FlatLayout layout(params, 1, n);
  ASSERT_EQ(layout.offset(6), 33);
  ASSERT_EQ(layout.padded(), 40);
  const at::Tensor expected = at::arange(1, 41, at::kDouble) * (n * (n + 1) / 2);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16})
    for (const bool zero_1 : {true, false})
      for (const int64_t bucket : {int64_t{1}, int64_t{6}, int64_t{13}, int64_t{40}}) {
        at::Tensor flat = (at::arange(1, 41, at::kDouble) * (r + 1)).to(dtype);
        flat[39] = 0;  // the padding element
        GradientBuckets buckets(flat, layout, bucket, world(), zero_1);
        buckets.mark_ready({6, 5});
        EXPECT_TRUE(buckets.in_progress());
        buckets.mark_ready({4, 0});  // 0 is held; 3 is not ready yet, so nothing below 4 may go
        buckets.mark_ready({3, 2, 1});
        const at::Tensor result = buckets.finish().to(at::kDouble);
        EXPECT_FALSE(buckets.in_progress());
        at::Tensor want = expected.clone();
        want[39] = 0;
        if (zero_1) want = want.narrow(0, r * 40 / n, 40 / n);
        const double rtol = dtype == at::kFloat ? 0 : 1.0 / 128;
        EXPECT_TRUE(at::allclose(result, want, rtol, 0))
            << c10::toString(dtype) << " zero_1 " << zero_1 << " bucket " << bucket;
      }
}

TEST(Mappings, ForwardAndBackward) {
  const int n = world().size(), r = world().rank();
  const double ranks_sum = n * (n + 1) / 2.0;
  const auto run = [&](auto mapping) {
    const at::Tensor x = at::full({2 * n, 3}, r + 1.0, at::kDouble).set_requires_grad(true);
    const at::Tensor y = mapping(x, world());
    (y * (r + 1.0)).sum().backward();
    return std::make_pair(y.detach(), x.grad());
  };
  {  // copy_to_tp: fwd identity, bwd all-reduce → grad Σ(r+1)
    auto [y, g] = run(copy_to_tp);
    EXPECT_TRUE(at::equal(y, at::full({2 * n, 3}, r + 1.0, at::kDouble)));
    EXPECT_TRUE(at::equal(g, at::full({2 * n, 3}, ranks_sum, at::kDouble)));
  }
  {  // reduce_from_tp: fwd all-reduce, bwd identity
    auto [y, g] = run(reduce_from_tp);
    EXPECT_TRUE(at::equal(y, at::full({2 * n, 3}, ranks_sum, at::kDouble)));
    EXPECT_TRUE(at::equal(g, at::full({2 * n, 3}, r + 1.0, at::kDouble)));
  }
  {  // scatter_to_sp: fwd own slice [2, 3], bwd all-gather → block i holds (i+1)
    auto [y, g] = run(scatter_to_sp);
    EXPECT_EQ(y.size(0), 2);
    for (int i = 0; i < n; ++i) EXPECT_TRUE(at::equal(g.narrow(0, 2 * i, 2), at::full({2, 3}, i + 1.0, at::kDouble)));
  }
  {  // gather_from_sp: fwd all-gather [2n·n, 3], bwd reduce-scatter → Σ(r+1)
    auto [y, g] = run(gather_from_sp);
    EXPECT_EQ(y.size(0), 2 * n * n);
    EXPECT_TRUE(at::equal(y.narrow(0, 0, 2 * n), at::full({2 * n, 3}, 1.0, at::kDouble)));
    EXPECT_TRUE(at::equal(g, at::full({2 * n, 3}, ranks_sum, at::kDouble)));
  }
  {  // reduce_scatter_to_sp: fwd reduce-scatter [2, 3] of Σ(r+1), bwd all-gather → block i holds (i+1)
    auto [y, g] = run(reduce_scatter_to_sp);
    EXPECT_TRUE(at::equal(y, at::full({2, 3}, ranks_sum, at::kDouble)));
    for (int i = 0; i < n; ++i) EXPECT_TRUE(at::equal(g.narrow(0, 2 * i, 2), at::full({2, 3}, i + 1.0, at::kDouble)));
  }
}

}  // namespace
}  // namespace llama2::testing
