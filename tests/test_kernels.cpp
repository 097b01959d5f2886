// The vectorised kernels against libm and libtorch: exp, SwiGLU, and the fused QKV split with rotary embedding.
#include <cmath>

#include <ATen/ATen.h>

#include "llama2/kernels/vector_math.h"
#include "llama2/model/rotary.h"
#include "llama2/model/swiglu.h"
#include "test_support.h"

namespace llama2::testing {
namespace {

// Against libm's exp in fp64 over fp32's normal range, every 1e-3; exactly 0 below it (as an underflow to 0),
// exactly 1 at 0. Tolerance: 2e-7 relative (fp32's epsilon is 1.19e-7).
TEST(VectorMath, ExpMatchesLibmOverFp32Range) {
  double worst = 0;
  for (double x = -87.3; x <= 88.3; x += 1e-3) {
    const double ref = std::exp(static_cast<double>(static_cast<float>(x)));
    worst = std::max(worst, std::abs(vector_exp(static_cast<float>(x)) - ref) / ref);
  }
  EXPECT_LE(worst, 2e-7);
  EXPECT_EQ(vector_exp(0.0f), 1.0f);
  for (const float x : {-87.5f, -100.0f, -1e4f, -INFINITY}) EXPECT_EQ(vector_exp(x), 0.0f) << x;
}

// silu(g)·u and its gradients by libtorch autograd in fp64, on a row length that is not a multiple of any vector
// width and on gates out to ±100 (exp's clamps). Tolerance: fp32 rounding, 1e-6 relative to the scale.
TEST(SwiGlu, EqualsSiluTimesUpAndItsGradients) {
  at::manual_seed(11);
  const int64_t f = 37;
  const at::Tensor gate_up = (at::randn({3, 5, 2 * f}) * 20).clamp(-100, 100).set_requires_grad(true);
  const at::Tensor dy = at::randn({3, 5, f});
  const at::Tensor y = swiglu(gate_up);
  y.backward(dy);

  const at::Tensor g64 = gate_up.detach().to(at::kDouble).set_requires_grad(true);
  const at::Tensor ref = at::silu(g64.narrow(-1, 0, f)) * g64.narrow(-1, f, f);
  ref.backward(dy.to(at::kDouble));
  EXPECT_TRUE(close_to_scale(y, ref.to(at::kFloat), 1e-6));
  EXPECT_TRUE(close_to_scale(gate_up.grad(), g64.grad().to(at::kFloat), 1e-6));
}

// rotary_qkv against Hugging Face's formula on the split projection (q·cos + rotate_half(q)·sin, v untouched),
// with GQA (4 query heads, 2 kv heads), forward and gradient by libtorch autograd in fp64. Tolerance 1e-6.
TEST(Rotary, FusedQkvSplitEqualsRotateHalfAndItsGradient) {
  const int64_t s = 9, b = 2, nq = 4, nkv = 2, d = 8;
  at::manual_seed(12);
  const RotaryTables tables = RotaryTables::make(16, d, 10000.0);
  const at::Tensor qkv = at::randn({s, b, (nq + 2 * nkv) * d}).set_requires_grad(true);
  const QkvHeads heads = rotary_qkv(qkv, nq, nkv, tables);
  const at::Tensor dq = at::randn({s, b, nq, d}), dk = at::randn({s, b, nkv, d}), dv = at::randn({s, b, nkv, d});
  ((heads.q * dq).sum() + (heads.k * dk).sum() + (heads.v * dv).sum()).backward();

  const at::Tensor x64 = qkv.detach().to(at::kDouble).set_requires_grad(true);
  const auto parts = x64.split_with_sizes({nq * d, nkv * d, nkv * d}, -1);
  const at::Tensor cos = tables.cos.narrow(0, 0, s).to(at::kDouble).view({s, 1, 1, d});
  const at::Tensor sin = tables.sin.narrow(0, 0, s).to(at::kDouble).view({s, 1, 1, d});
  const auto rotate = [&](const at::Tensor& t, int64_t n) {
    const at::Tensor x = t.reshape({s, b, n, d});
    return x * cos + at::cat({-x.narrow(3, d / 2, d / 2), x.narrow(3, 0, d / 2)}, 3) * sin;
  };
  const at::Tensor q = rotate(parts[0], nq), k = rotate(parts[1], nkv), v = parts[2].reshape({s, b, nkv, d});
  ((q * dq.to(at::kDouble)).sum() + (k * dk.to(at::kDouble)).sum() + (v * dv.to(at::kDouble)).sum()).backward();
  EXPECT_TRUE(close_to_scale(heads.q, q.to(at::kFloat), 1e-6));
  EXPECT_TRUE(close_to_scale(heads.k, k.to(at::kFloat), 1e-6));
  EXPECT_TRUE(at::equal(heads.v, v.to(at::kFloat)));
  EXPECT_TRUE(close_to_scale(qkv.grad(), x64.grad().to(at::kFloat), 1e-6));
}

}  // namespace
}  // namespace llama2::testing
