// oneDNN matmul, tile GEMMs and linear (plain and with packed weights) against libtorch's own (reference BLAS)
// matmul.
#include <ATen/ATen.h>

#include "llama2/kernels/linear.h"
#include "llama2/kernels/matmul.h"
#include "llama2/kernels/packed_operands.h"
#include "llama2/kernels/packed_weights.h"
#include "llama2/util/errors.h"
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

// A bf16 weight's gradient added into an fp32 buffer as its .grad (the trainer's main gradients, oneDNN's sum
// post-op reading dy transposed), over 300 tokens: buffer + dyᵀ·x of the same bf16 values in fp64.
// Tolerance: fp32 accumulation over 300 products, 1e-5 of the result's scale.
TEST(Linear, Bf16WeightGradientAddsIntoAnFp32Buffer) {
  at::manual_seed(3);
  const at::Tensor x = at::randn({300, 24}).to(at::kBFloat16), dy = at::randn({300, 70}).to(at::kBFloat16);
  const at::Tensor w = at::randn({70, 24}).to(at::kBFloat16).set_requires_grad(true);
  const at::Tensor before = at::randn({70, 24});
  w.mutable_grad() = before.clone();
  llama2::linear(x, w).backward(dy);
  ASSERT_EQ(w.grad().scalar_type(), at::kFloat);
  const at::Tensor ref = before.to(at::kDouble) + dy.to(at::kDouble).t().matmul(x.to(at::kDouble));
  EXPECT_TRUE(close_to_scale(w.grad(), ref, 1e-5));
}

// tile_matmul on sub-matrices of larger ones (leading dimensions above the columns), each transpose, with and
// without accumulation, fp32 and bf16 inputs into fp32, fp64 by its loops. Tolerances: fp32 rounding 1e-5; bf16
// inputs are the reference's too (rounded first), so only the fp32 sums differ: 1e-4.
TEST(TileMatmul, SubMatricesEveryTransposeAndAccumulationEqualTorch) {
  at::manual_seed(4);
  const int64_t m = 19, k = 40, n = 27, ld = 50;
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kDouble})
    for (const bool ta : {false, true})
      for (const bool tb : {false, true})
        for (const bool accumulate : {false, true}) {
          const at::ScalarType acc = dtype == at::kDouble ? at::kDouble : at::kFloat;
          const TileType type = dtype == at::kDouble     ? TileType::F64
                                : dtype == at::kBFloat16 ? TileType::BF16
                                                         : TileType::F32;
          const at::Tensor a_store = at::randn({ld, ld}).to(dtype), b_store = at::randn({ld, ld}).to(dtype);
          const at::Tensor a = ta ? a_store.narrow(0, 0, k).narrow(1, 0, m) : a_store.narrow(0, 0, m).narrow(1, 0, k);
          const at::Tensor b = tb ? b_store.narrow(0, 0, n).narrow(1, 0, k) : b_store.narrow(0, 0, k).narrow(1, 0, n);
          at::Tensor c_store = at::randn({m, ld}, acc);
          const at::Tensor c0 = c_store.narrow(1, 0, n).clone();
          const TileOperand a_tile{a.data_ptr(), a.size(0), a.size(1), ld, type, ta};
          const TileOperand b_tile{b.data_ptr(), b.size(0), b.size(1), ld, type, tb};
          tile_matmul(a_tile, b_tile, c_store.data_ptr(), ld, dtype == at::kDouble ? TileType::F64 : TileType::F32,
                      accumulate);
          const at::Tensor product = at::matmul((ta ? a.t() : a).to(acc), (tb ? b.t() : b).to(acc));
          const at::Tensor expected = accumulate ? c0 + product : product;
          const double tolerance = dtype == at::kBFloat16 ? 1e-4 : 1e-5;
          EXPECT_TRUE(all_close(c_store.narrow(1, 0, n), expected, tolerance, tolerance))
              << c10::toString(dtype) << " ta " << ta << " tb " << tb << " accumulate " << accumulate;
        }
}

// Tile GEMMs with packed right operands: op(b) packed once, then ranges of it read in place, against libtorch's
// product of the same range in fp64; from a transposed b (columns from multiples of 64, the last to b's end) and a
// plain b of 48 columns and an odd number of rows (rows from multiples of 32, the last range to b's end: bf16's last
// pair has no second row). Tolerances as in the test above. Ranges that are not packed operands are refused, and
// an operand already in the packed layout is not packed again.
TEST(TileMatmul, PackedRightOperandRangesEqualTorch) {
  at::manual_seed(5);
  const int64_t m = 23, k_t = 64, n_t = 200, k_p = 201, n_p = 48, ld = 72;
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    const TileType type = dtype == at::kBFloat16 ? TileType::BF16 : TileType::F32;
    if (!tile_packing(type)) continue;  // this CPU's tile GEMMs read b plain
    const double tolerance = dtype == at::kBFloat16 ? 1e-4 : 1e-5;
    const auto check = [&](const TileOperand& b, const at::Tensor& expected_b, const char* what) {  // op(b) [k, n]
      const at::Tensor a = at::randn({m, b.rows}).to(dtype);
      at::Tensor c = at::empty({m, b.cols}, at::kFloat);
      tile_matmul(TileOperand{a.data_ptr(), m, b.rows, b.rows, type}, b, c.data_ptr(), b.cols, TileType::F32, false);
      EXPECT_TRUE(all_close(c, a.to(at::kDouble).matmul(expected_b.to(at::kDouble)).to(at::kFloat), tolerance,
                            tolerance))
          << c10::toString(dtype) << " " << what << " [" << b.rows << ", " << b.cols << "]";
    };
    // b [n_t, k_t] in a wider store, read transposed: op(b) = bᵀ [k_t, n_t].
    const at::Tensor b_store = at::randn({n_t, ld}).to(dtype), b = b_store.narrow(1, 0, k_t);
    const TileOperand b_op{b.data_ptr(), n_t, k_t, ld, type, true};
    ASSERT_TRUE(packable(b_op));
    std::vector<char> packed_t(packed_bytes(b_op));
    const TileOperand whole_t = pack(b_op, packed_t.data());
    for (const auto& [c0, cols] : {std::pair<int64_t, int64_t>{0, 64}, {64, 136}, {128, 72}})
      check(packed_columns(whole_t, c0, cols), b.t().narrow(1, c0, cols), "columns");
    // b [k_p, n_p], plain.
    const at::Tensor p_store = at::randn({k_p, ld}).to(dtype), p = p_store.narrow(1, 0, n_p);
    std::vector<char> packed_p(packed_bytes(TileOperand{p.data_ptr(), k_p, n_p, ld, type}));
    const TileOperand whole_p = pack(TileOperand{p.data_ptr(), k_p, n_p, ld, type}, packed_p.data());
    for (const auto& [r0, rows] : {std::pair<int64_t, int64_t>{0, 64}, {64, 96}, {160, 41}})
      check(packed_rows(whole_p, r0, rows), p.narrow(0, r0, rows), "rows");
    EXPECT_THROW(packed_rows(whole_p, 8, 32), RuntimeFailure);  // starts inside a group
    EXPECT_THROW(packed_rows(whole_p, 0, 40), RuntimeFailure);  // ends inside a group, before b's last row
    EXPECT_THROW(packed_columns(whole_t, 32, 64), RuntimeFailure);
    // Plain fp32 rows of 64 elements, 64 apart, in whole groups of 16 rows are in the packed layout already.
    EXPECT_EQ(packable(TileOperand{p.data_ptr(), 64, 64, 64, type}), type == TileType::BF16);
  }
}

// Weight packing on for the test's duration.
struct WeightPackingOn {
  WeightPackingOn() { set_weight_packing(true); }
  ~WeightPackingOn() { set_weight_packing(false); }
};

// linear with packed weights against x·wᵀ, dy·w and dyᵀ·x in fp32 on the same inputs, through every change of
// the weight: first use, an in-place update (its version counter moves: a stale copy would fail), a new weight
// tensor. At least one orientation is read from a copy (on AVX-512 without AMX oneDNN blocks the forward's wᵀ and
// reads w in place for the data gradient). Tolerances: fp32 rounding
// 1e-5; bf16 outputs are rounded to bf16, 2^-8 relative (1e-2 with the sums' own rounding).
TEST(PackedWeights, LinearReadsTheCopyAndFollowsEveryChangeOfTheWeight) {
  at::manual_seed(6);
  const WeightPackingOn packing;
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    const double tolerance = dtype == at::kFloat ? 1e-5 : 1e-2;
    const at::Tensor x0 = at::randn({64, 96}).to(dtype), dy = at::randn({64, 80}).to(dtype);
    const auto check = [&](const at::Tensor& w, const std::string& what) {
      const at::Tensor x = x0.clone().set_requires_grad(true);
      const at::Tensor y = llama2::linear(x, w);
      y.backward(dy);
      const at::Tensor xf = x0.to(at::kFloat), wf = w.detach().to(at::kFloat), dyf = dy.to(at::kFloat);
      const std::vector<std::pair<at::Tensor, at::Tensor>> pairs{
          {y.detach(), xf.matmul(wf.t())}, {x.grad(), dyf.matmul(wf)}, {w.grad(), dyf.t().matmul(xf)}};
      for (size_t i = 0; i < pairs.size(); ++i) {
        const at::Tensor ours = pairs[i].first.to(at::kFloat), ref = pairs[i].second;
        EXPECT_TRUE(all_close(ours, ref, tolerance, tolerance * ref.abs().max().item<double>()))
            << c10::toString(dtype) << " " << what << ": " << (i == 0 ? "y" : i == 1 ? "dx" : "dw");
      }
      w.mutable_grad().reset();
    };
    at::Tensor w = at::randn({80, 96}).to(dtype).set_requires_grad(true);
    check(w, "first use");
    EXPECT_GE(packed_weight_bytes(), w.numel() * w.element_size()) << "a copy of at least one orientation";
    {
      c10::AutoGradMode no_grad(false);
      w.mul_(-0.5);
    }
    check(w, "after an in-place update");
    w = at::randn({80, 96}).to(dtype).set_requires_grad(true);
    check(w, "a new weight");
  }
}

}  // namespace
}  // namespace llama2::testing
