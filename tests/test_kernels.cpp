// The vectorised kernels against libm and libtorch: exp, bf16 conversions, softmax rows, tile transposition, SwiGLU,
// RMSNorm and the fused QKV split with rotary embedding, in fp32 and bf16.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "llama2/kernels/dtype_conversion.h"
#include "llama2/kernels/softmax_rows.h"
#include "llama2/kernels/transpose.h"
#include "llama2/kernels/vector_math.h"
#include "llama2/model/rmsnorm.h"
#include "llama2/model/rotary.h"
#include "llama2/model/swiglu.h"
#include "test_support.h"

namespace llama2::testing {
namespace {

// Against libm's exp in fp64 over fp32's normal range, every 1e-3; exactly 1 at 0; below that range off by less
// than its smallest normal (1.18e-38) and exactly 0 from −88 down; NaN stays NaN (the trainer's non-finite check
// relies on it). Tolerance: 2e-7 relative (fp32's epsilon is 1.19e-7).
TEST(VectorMath, ExpMatchesLibmOverFp32Range) {
  double worst = 0;
  for (double x = -87.3; x <= 88.3; x += 1e-3) {
    const double ref = std::exp(static_cast<double>(static_cast<float>(x)));
    worst = std::max(worst, std::abs(vector_exp(static_cast<float>(x)) - ref) / ref);
  }
  EXPECT_LE(worst, 2e-7);
  EXPECT_EQ(vector_exp(0.0f), 1.0f);
  for (double x = -87.3; x >= -88.5; x -= 1e-3)
    EXPECT_LT(std::abs(vector_exp(static_cast<float>(x)) - std::exp(static_cast<double>(static_cast<float>(x)))),
              1.18e-38)
        << x;
  for (const float x : {-88.0f, -100.0f, -1e4f, -INFINITY}) EXPECT_EQ(vector_exp(x), 0.0f) << x;
  EXPECT_TRUE(std::isnan(vector_exp(NAN)));
}

// The kernels' bit-level bf16 conversions against c10::BFloat16's: every bf16 value widens exactly, and fp32 values
// (random ones, exact ties, values that round up into the next binade, ±0, the extremes) narrow to the same bits.
TEST(Bf16, ConversionsEqualC10s) {
  for (uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    const c10::BFloat16 b(static_cast<uint16_t>(bits), c10::BFloat16::from_bits());
    if (std::isnan(static_cast<float>(b))) continue;
    EXPECT_EQ(to_acc(b), static_cast<float>(b)) << bits;
  }
  at::manual_seed(13);
  const at::Tensor random = at::randn({100000}) * at::exp(at::randn({100000}) * 10);
  std::vector<float> values(random.data_ptr<float>(), random.data_ptr<float>() + random.numel());
  for (const float x : {0.0f, -0.0f, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 1.99999988f, -3.3895314e38f, 1e-40f})
    values.push_back(x);
  for (const float x : values) EXPECT_EQ(from_acc<c10::BFloat16>(x).x, c10::BFloat16(x).x) << x;
}

// The row conversion (AVX512-BF16's instruction where this CPU has it, else from_acc) against c10::BFloat16's, one
// value at a time, for every length up to 40 (16-wide blocks and every tail) and at unaligned starts: random values
// over fp32's normal range, ties, ±0, the extremes. Subnormals are left out: the instruction flushes them to 0.
TEST(Bf16, RowConversionEqualsC10s) {
  at::manual_seed(17);
  const at::Tensor random = at::randn({4096}) * at::exp(at::randn({4096}) * 10);
  std::vector<float> values;
  const float* r = random.data_ptr<float>();
  std::copy_if(r, r + random.numel(), std::back_inserter(values),
               [](float x) { return x == 0 || std::abs(x) >= 1.18e-38f; });
  for (const float x : {0.0f, -0.0f, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 1.99999988f, -3.3895314e38f})
    values.push_back(x);
  std::vector<c10::BFloat16> out(values.size() + 1);
  for (int64_t n = 0; n <= 40; ++n)
    for (const int64_t start : {int64_t{0}, int64_t{3}}) {
      const c10::BFloat16 sentinel(static_cast<uint16_t>(0x1234), c10::BFloat16::from_bits());
      std::fill(out.begin(), out.end(), sentinel);
      from_acc_row(values.data() + start, out.data() + start, n);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(out[start + i].x, c10::BFloat16(values[start + i]).x) << n << " " << i;
      EXPECT_EQ(out[start + n].x, sentinel.x) << "wrote past " << n;
    }
  for (size_t i = 0; i < values.size(); i += 1000) {
    const int64_t n = std::min<int64_t>(1000, static_cast<int64_t>(values.size() - i));
    from_acc_row(values.data() + i, out.data(), n);
    for (int64_t k = 0; k < n; ++k) EXPECT_EQ(out[k].x, c10::BFloat16(values[i + k]).x) << values[i + k];
  }
}

// The softmax rows (fp32 and bf16 in whichever form this CPU runs: AVX-512 intrinsics where it has AVX512-BF16;
// fp64 in the portable loops everywhere) against fp64 libm, one row of a tile
// at every length up to 40 and 600 (16-wide blocks and every tail), past each row's end left alone: exps of
// arguments in [−30, 0] (the forward's, against the row's max·scale as its first tile, then as a later tile
// against running maxes 1.5 above it and 2 below, with the sum and the output rescaled by exp(old − new max)) and
// [−30, 30] (the backward's, a shift per element, and the scores' gradient), and far below (−200, −∞: 0).
// Tolerances: fp32 3e-7 relative to the exp plus fp32's roundings of the argument and the product before it
// ((|x| + |z·scale|)·6e-8; the forms differ in whether they fuse z·scale − shift), 0 below 1.2e-38 (subnormals);
// bf16 2^-8 relative (its rounding, 2^-9, plus the bf16 rows' exp error, 7.5e-5); sums 1e-6 relative, bf16 rows'
// 1e-4 (that exp's error), the rescaled output 1e-6. NaN stays NaN.
template <typename T>
void expect_softmax_rows(int64_t n) {
  constexpr float kScale = 0.7f;
  const bool bf16 = std::is_same_v<T, c10::BFloat16>;
  using A = Acc<T>;
  std::vector<A> z(n + 1), shift(n), dp(n + 1), D(n);
  for (int64_t i = 0; i < n; ++i) {
    z[i] = static_cast<A>((i * 37) % 83) * A(0.5) - A(20);  // z·scale − shift within [−30, 30]
    shift[i] = static_cast<A>(i % 7) - A(3);
    dp[i] = static_cast<A>(i % 11) * A(0.25) - A(1), D[i] = static_cast<A>(i % 5) * A(0.1);
  }
  if (n > 3) z[1] = A(-200), z[2] = -std::numeric_limits<A>::infinity();  // exp → 0
  // got against exp(zs − shift)·factor (zs: z·scale); returns exp(zs − shift).
  const auto expect_close = [&](double got, double zs, double shift, const char* what, int64_t i, double factor = 1) {
    const double x = zs - shift, e = std::exp(x), ref = e * factor;
    const double relative = std::isinf(x) ? 0 : bf16 ? 1.0 / 256 : 3e-7 + (std::abs(x) + std::abs(zs)) * 6e-8;
    EXPECT_NEAR(got, ref, std::abs(ref) * relative + 1.2e-38) << what << " n " << n << " i " << i << " x " << x;
    return e;
  };
  const T sentinel(-1.0f);
  std::vector<T> p(n + 1, sentinel);
  const A top = *std::max_element(z.begin(), z.begin() + n) * A(kScale);  // the row's max·scale, as the form has it
  for (const double running : {0.0, 1.5, -2.0}) {  // 0: the row's first tile; else a later tile's running max − top
    const A before = static_cast<A>(top + running);  // the running max before this tile
    std::vector<A> scratch(z), m{before}, l{A(3)}, o{A(1), A(-2), A(0.5)};
    online_softmax_rows(scratch.data(), 1, n, n, A(kScale), running == 0, m.data(), l.data(), o.data(), 3, p.data());
    const A max = std::max(top, before);
    double ref_sum = 0;
    for (int64_t i = 0; i < n; ++i)
      ref_sum += expect_close(static_cast<double>(p[i]), static_cast<double>(z[i]) * A(kScale), max, "p", i);
    const double alpha = running == 0 ? 0.0 : std::exp(static_cast<double>(before) - max);
    EXPECT_EQ(m[0], max) << "m, n " << n;
    EXPECT_NEAR(l[0], 3 * alpha + ref_sum, (3 * alpha + ref_sum) * (bf16 ? 1e-4 : 1e-6)) << "l, n " << n;
    if (running != 0)
      for (int k = 0; k < 3; ++k) EXPECT_NEAR(o[k], (k == 0 ? 1 : k == 1 ? -2 : 0.5) * alpha, 1e-6) << "o " << k;
    EXPECT_EQ(static_cast<float>(p[n]), -1.0f) << "online_softmax_rows wrote past " << n;
  }

  std::fill(p.begin(), p.end(), sentinel);
  std::vector<T> ds(n + 1, sentinel);
  std::vector<A> gradient(dp), scratch(z);
  softmax_gradient_rows(scratch.data(), gradient.data(), 1, n, 0, A(kScale), shift.data(), D.data(), p.data(),
                        ds.data());
  for (int64_t i = 0; i < n; ++i) {
    const double zs = static_cast<double>(z[i]) * A(kScale);
    expect_close(static_cast<double>(p[i]), zs, shift[i], "softmax_gradient_rows' p", i);
    expect_close(static_cast<double>(ds[i]), zs, shift[i], "softmax_gradient_rows' ds", i,
                 (static_cast<double>(dp[i]) - D[i]) * A(kScale));
  }
  EXPECT_EQ(static_cast<float>(p[n]), -1.0f) << "softmax_gradient_rows wrote past " << n;
  EXPECT_EQ(static_cast<float>(ds[n]), -1.0f) << "softmax_gradient_rows wrote past " << n;
}

TEST(SoftmaxRows, EqualLibmAtEveryTail) {
  const auto every_type = [](int64_t n) {
    expect_softmax_rows<float>(n), expect_softmax_rows<c10::BFloat16>(n), expect_softmax_rows<double>(n);
  };
  for (int64_t n = 1; n <= 40; ++n) every_type(n);
  every_type(600);
  const auto expect_nan = [](auto p) {  // a NaN score: its probability and the row's sum NaN
    float z[2] = {1.0f, NAN}, m = 0, l = 0;
    online_softmax_rows(z, 1, 2, 2, 1.0f, true, &m, &l, nullptr, 0, &p[0]);
    EXPECT_TRUE(std::isnan(l));
    EXPECT_TRUE(std::isnan(static_cast<float>(p[1])));
  };
  expect_nan(std::array<float, 2>{}), expect_nan(std::array<c10::BFloat16, 2>{});
}

// online_softmax_rows over a tile of 4 rows of 37, as the row's first key tile and as a later one: row r's entries
// from min(r + diagonal + 1, 37) on exactly 0 in p, the rest, and the row's m, l and o, equal to the same row's
// visible keys computed alone (one row, nothing masked), bit for bit; diagonals that mask part of each row or none.
template <typename T>
void expect_online_tile_masked(int64_t diagonal, bool first) {
  using A = Acc<T>;
  constexpr int64_t kRows = 4, kN = 37, kD = 5;
  std::vector<A> z(kRows * kN), m(kRows), l(kRows), o(kRows * kD);
  for (int64_t i = 0; i < kRows * kN; ++i) z[i] = static_cast<A>(i % 13) * A(0.5) - A(3);
  for (int64_t r = 0; r < kRows; ++r) m[r] = static_cast<A>(r) * A(0.9), l[r] = A(2) + static_cast<A>(r);
  for (int64_t i = 0; i < kRows * kD; ++i) o[i] = static_cast<A>(i % 3) - A(1);
  std::vector<A> z_tile(z), m_tile(m), l_tile(l), o_tile(o);
  std::vector<T> p(kRows * kN, T(-1.0f));
  online_softmax_rows(z_tile.data(), kRows, kN, diagonal, A(0.7), first, m_tile.data(), l_tile.data(), o_tile.data(),
                      kD, p.data());
  for (int64_t r = 0; r < kRows; ++r) {
    const int64_t visible = std::min(r + diagonal + 1, kN);
    std::vector<A> z_row(z.begin() + r * kN, z.begin() + r * kN + visible), o_row(o.begin() + r * kD, o.end());
    A m_row = m[r], l_row = l[r];
    std::vector<T> p_row(visible);
    online_softmax_rows(z_row.data(), 1, visible, visible, A(0.7), first, &m_row, &l_row, o_row.data(), kD,
                        p_row.data());
    const std::string where = "diagonal " + std::to_string(diagonal) + " first " + std::to_string(first) + " row " +
                              std::to_string(r);
    for (int64_t i = 0; i < kN; ++i)
      EXPECT_EQ(static_cast<double>(p[r * kN + i]), i < visible ? static_cast<double>(p_row[i]) : 0.0)
          << where << " i " << i;
    EXPECT_EQ(m_tile[r], m_row) << where;
    EXPECT_EQ(l_tile[r], l_row) << where;
    for (int64_t k = 0; k < kD; ++k) EXPECT_EQ(o_tile[r * kD + k], o_row[k]) << where << " o " << k;
  }
}

TEST(SoftmaxRows, OnlineTileZeroesMaskedEntriesOnly) {
  for (const int64_t diagonal : {0, 3, 20, 40})
    for (const bool first : {true, false}) {
      expect_online_tile_masked<float>(diagonal, first);
      expect_online_tile_masked<c10::BFloat16>(diagonal, first);
      expect_online_tile_masked<double>(diagonal, first);
    }
}

// softmax_gradient_rows over a tile of 4 rows of 37: row j's entries before clamp(j − diagonal, 0, 37) exactly 0 in
// p and ds, the rest equal to the same row's entries computed alone (count 1, nothing masked), bit for bit; diagonals
// that mask nothing, part of each row, and all of some rows.
template <typename T>
void expect_gradient_tile_masked(int64_t diagonal) {
  using A = Acc<T>;
  constexpr int64_t kRows = 4, kN = 37;
  std::vector<A> z(kRows * kN), dp(kRows * kN), lse(kN), D(kN);
  for (int64_t i = 0; i < kRows * kN; ++i)
    z[i] = static_cast<A>(i % 13) * A(0.5) - A(3), dp[i] = static_cast<A>(i % 7) * A(0.25);
  for (int64_t i = 0; i < kN; ++i) lse[i] = static_cast<A>(i % 5), D[i] = static_cast<A>(i % 3) * A(0.1);
  std::vector<A> z_tile(z), dp_tile(dp);
  std::vector<T> p(kRows * kN, T(-1.0f)), ds(kRows * kN, T(-1.0f));
  softmax_gradient_rows(z_tile.data(), dp_tile.data(), kRows, kN, diagonal, A(0.7), lse.data(), D.data(), p.data(),
                        ds.data());
  for (int64_t j = 0; j < kRows; ++j) {
    std::vector<A> z_row(z.begin() + j * kN, z.begin() + (j + 1) * kN), dp_row(dp.begin() + j * kN, dp.end());
    std::vector<T> p_row(kN), ds_row(kN);
    softmax_gradient_rows(z_row.data(), dp_row.data(), 1, kN, 0, A(0.7), lse.data(), D.data(), p_row.data(),
                          ds_row.data());
    const int64_t from = std::clamp<int64_t>(j - diagonal, 0, kN);
    for (int64_t i = 0; i < kN; ++i) {
      const double want_p = i < from ? 0.0 : static_cast<double>(p_row[i]);
      const double want_ds = i < from ? 0.0 : static_cast<double>(ds_row[i]);
      EXPECT_EQ(static_cast<double>(p[j * kN + i]), want_p) << "diagonal " << diagonal << " row " << j << " i " << i;
      EXPECT_EQ(static_cast<double>(ds[j * kN + i]), want_ds) << "diagonal " << diagonal << " row " << j << " i " << i;
    }
  }
}

TEST(SoftmaxRows, GradientTileZeroesMaskedEntriesOnly) {
  for (const int64_t diagonal : {3, 0, -10, -35}) {
    expect_gradient_tile_masked<float>(diagonal);
    expect_gradient_tile_masked<c10::BFloat16>(diagonal);
    expect_gradient_tile_masked<double>(diagonal);
  }
}

// Each element of y = xᵀ against x read by index, exactly (a transposition moves bits): shapes with and without
// whole 16 × 16 blocks and their edges, source and destination rows padded (their padding left alone), each type.
template <typename T>
void expect_transposed(int64_t rows, int64_t cols) {
  const int64_t ldx = cols + 3, ldy = rows + 5;
  std::vector<T> x(rows * ldx), y(cols * ldy, T(-1.0f));
  for (int64_t i = 0; i < rows * ldx; ++i) x[i] = T(static_cast<float>(i % 251) - 125.0f);
  transpose(x.data(), rows, cols, ldx, y.data(), ldy);
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t r = 0; r < rows; ++r)
      ASSERT_EQ(static_cast<double>(y[c * ldy + r]), static_cast<double>(x[r * ldx + c])) << rows << "x" << cols;
    for (int64_t r = rows; r < ldy; ++r) ASSERT_EQ(static_cast<double>(y[c * ldy + r]), -1.0) << "padding";
  }
}

TEST(Transpose, EqualsIndexedReadAtEveryShapeAndType) {
  for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {16, 16}, {15, 17}, {32, 48}, {37, 50}, {524, 256}, {3, 40}, {40, 3}}) {
    expect_transposed<float>(rows, cols);
    expect_transposed<c10::BFloat16>(rows, cols);
    expect_transposed<double>(rows, cols);
  }
}

// The inputs of a kernel test in `dtype`, and the same values in fp64 for the reference.
at::Tensor in_dtype(const at::Tensor& x, at::ScalarType dtype) { return x.to(dtype).set_requires_grad(true); }
at::Tensor as_f64(const at::Tensor& x) { return x.detach().to(at::kDouble).set_requires_grad(true); }

// Tolerance relative to the reference's scale: fp32 rounding 1e-6; bf16 (8-bit mantissa, outputs rounded once
// more than the reference) 1e-2.
double kernel_tolerance(at::ScalarType dtype) { return dtype == at::kFloat ? 1e-6 : 1e-2; }

// silu(g)·u and its gradients by libtorch autograd in fp64, on a row length that is not a multiple of any vector
// width and on gates out to ±100 (exp's clamps), fp32 and bf16.
TEST(SwiGlu, EqualsSiluTimesUpAndItsGradients) {
  at::manual_seed(11);
  const int64_t f = 37;
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    const at::Tensor gate_up = in_dtype((at::randn({3, 5, 2 * f}) * 20).clamp(-100, 100), dtype);
    const at::Tensor dy = at::randn({3, 5, f}).to(dtype);
    const at::Tensor y = swiglu(gate_up);
    y.backward(dy);

    const at::Tensor g64 = as_f64(gate_up);
    const at::Tensor ref = at::silu(g64.narrow(-1, 0, f)) * g64.narrow(-1, f, f);
    ref.backward(dy.to(at::kDouble));
    EXPECT_TRUE(close_to_scale(y, ref, kernel_tolerance(dtype))) << dtype;
    EXPECT_TRUE(close_to_scale(gate_up.grad(), g64.grad(), kernel_tolerance(dtype))) << dtype;
  }
}

// RMSNorm against HF's formula w·x/√(mean(x²) + eps) in fp64 with libtorch autograd: output and the gradients of x
// and w, rows of odd length (37), fp32 and bf16.
TEST(RmsNorm, EqualsHfFormulaAndItsGradients) {
  at::manual_seed(14);
  const int64_t h = 37;
  const double eps = 1e-5;
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    const at::Tensor x = in_dtype(at::randn({3, 5, h}) * 3, dtype), w = in_dtype(at::rand({h}) + 0.5, dtype);
    const at::Tensor dy = at::randn({3, 5, h}).to(dtype);
    rms_norm(x, w, eps).backward(dy);
    const at::Tensor x64 = as_f64(x), w64 = as_f64(w);
    const at::Tensor ref = w64 * x64 * (x64.pow(2).mean(-1, true) + eps).rsqrt();
    ref.backward(dy.to(at::kDouble));
    EXPECT_TRUE(close_to_scale(rms_norm(x, w, eps), ref, kernel_tolerance(dtype))) << dtype;
    EXPECT_TRUE(close_to_scale(x.grad(), x64.grad(), kernel_tolerance(dtype))) << dtype;
    EXPECT_TRUE(close_to_scale(w.grad(), w64.grad(), kernel_tolerance(dtype))) << dtype;
  }
}

// rotary_qkv against Hugging Face's formula on the split projection (q·cos + rotate_half(q)·sin, v untouched),
// with GQA (4 query heads, 2 kv heads), forward and gradient by libtorch autograd in fp64, fp32 and bf16; v is
// copied bit for bit.
TEST(Rotary, FusedQkvSplitEqualsRotateHalfAndItsGradient) {
  const int64_t s = 9, b = 2, nq = 4, nkv = 2, d = 8;
  at::manual_seed(12);
  const RotaryTables tables = RotaryTables::make(16, d, 10000.0);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    const at::Tensor qkv = in_dtype(at::randn({s, b, (nq + 2 * nkv) * d}), dtype);
    const QkvHeads heads = rotary_qkv(qkv, nq, nkv, tables);
    const at::Tensor dq = at::randn({s, b, nq, d}).to(dtype), dk = at::randn({s, b, nkv, d}).to(dtype);
    const at::Tensor dv = at::randn({s, b, nkv, d}).to(dtype);
    ((heads.q * dq).sum() + (heads.k * dk).sum() + (heads.v * dv).sum()).backward();

    const at::Tensor x64 = as_f64(qkv);
    const auto parts = x64.split_with_sizes({nq * d, nkv * d, nkv * d}, -1);
    const at::Tensor cos = tables.cos.narrow(0, 0, s).to(at::kDouble).view({s, 1, 1, d});
    const at::Tensor sin = tables.sin.narrow(0, 0, s).to(at::kDouble).view({s, 1, 1, d});
    const auto rotate = [&](const at::Tensor& t, int64_t n) {
      const at::Tensor x = t.reshape({s, b, n, d});
      return x * cos + at::cat({-x.narrow(3, d / 2, d / 2), x.narrow(3, 0, d / 2)}, 3) * sin;
    };
    const at::Tensor q = rotate(parts[0], nq), k = rotate(parts[1], nkv), v = parts[2].reshape({s, b, nkv, d});
    ((q * dq.to(at::kDouble)).sum() + (k * dk.to(at::kDouble)).sum() + (v * dv.to(at::kDouble)).sum()).backward();
    EXPECT_TRUE(close_to_scale(heads.q, q, kernel_tolerance(dtype))) << dtype;
    EXPECT_TRUE(close_to_scale(heads.k, k, kernel_tolerance(dtype))) << dtype;
    EXPECT_TRUE(at::equal(heads.v, v.to(dtype))) << dtype;
    EXPECT_TRUE(close_to_scale(qkv.grad(), x64.grad(), kernel_tolerance(dtype))) << dtype;
  }
}

}  // namespace
}  // namespace llama2::testing
