// oneDNN matmul and linear against libtorch's own (reference BLAS) matmul.
#include <ATen/ATen.h>

#include "llama2/kernels/matmul.h"
#include "test_support.h"

namespace llama2::testing {
namespace {

TEST(Matmul, AllTransposesAndBatchesEqualTorch) {
  at::manual_seed(0);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t batch : {int64_t{0}, int64_t{3}}) {
        const int64_t m = 17, k = 33, n = 9;
        auto shape = [&](int64_t r, int64_t c) {
          return batch ? std::vector<int64_t>{batch, r, c} : std::vector<int64_t>{r, c};
        };
        const at::Tensor a = at::randn(ta ? shape(k, m) : shape(m, k));
        const at::Tensor b = at::randn(tb ? shape(n, k) : shape(k, n));
        const at::Tensor ref = at::matmul(ta ? a.transpose(-1, -2) : a, tb ? b.transpose(-1, -2) : b);
        EXPECT_TRUE(all_close(llama2::matmul(a, ta, b, tb), ref, 1e-5, 1e-5)) << ta << tb << batch;
      }
}

TEST(Matmul, Bf16MatchesFp32WithinBf16Rounding) {
  at::manual_seed(1);
  const at::Tensor a = at::randn({64, 128}), b = at::randn({32, 128});
  const at::Tensor ours = llama2::matmul(a.to(at::kBFloat16), false, b.to(at::kBFloat16), true);
  EXPECT_EQ(ours.scalar_type(), at::kBFloat16);
  // Inputs rounded to bf16 (rel. 2^-8 each), fp32 accumulation, output rounded once more.
  EXPECT_TRUE(all_close(ours, at::matmul(a, b.t()), 2e-2, 0.15));
}

TEST(Linear, ForwardAndBackwardEqualTorch) {
  at::manual_seed(2);
  const at::Tensor x0 = at::randn({3, 5, 24}), w0 = at::randn({11, 24}), dy = at::randn({3, 5, 11});
  const at::Tensor x1 = x0.clone().set_requires_grad(true), w1 = w0.clone().set_requires_grad(true);
  const at::Tensor x2 = x0.clone().set_requires_grad(true), w2 = w0.clone().set_requires_grad(true);
  const at::Tensor ours = llama2::linear(x1, w1), ref = at::linear(x2, w2);
  EXPECT_TRUE(all_close(ours, ref, 1e-5, 1e-5));
  (ours * dy).sum().backward();
  (ref * dy).sum().backward();
  EXPECT_TRUE(all_close(x1.grad(), x2.grad(), 1e-5, 1e-5));
  EXPECT_TRUE(all_close(w1.grad(), w2.grad(), 1e-5, 1e-5));
}

}  // namespace
}  // namespace llama2::testing
