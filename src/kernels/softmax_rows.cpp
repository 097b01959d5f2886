// Softmax rows: per score tile, a pass per row that computes the exps (the forward's after one for the row's max) or
// the gradient, and writes them in the GEMMs' input type.
// Where the CPU has AVX512-BF16 (AMD Zen 4 on, Intel Cooper Lake and Sapphire Rapids on), fp32 and bf16 rows run
// as AVX-512 intrinsics: exp's 2^n by vscalefps and the rounding to bf16 by vcvtneps2bf16, in the same loop, whole
// 16-value steps without a mask to compute; bf16 rows with an exp to bf16's accuracy (the forward's step: 17
// instructions, 10 arithmetic, where fp32's exp makes it 21 and 14, and GCC's vectorised vector_exp took 28 and a
// conversion pass 5 more); else portable loops, vectorised per ISA, the conversion a second pass over the row in L1.
#include "llama2/kernels/softmax_rows.h"

#include <algorithm>
#include <limits>
#include <type_traits>

#if defined(__x86_64__) && !defined(__clang__)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() through, which -Wmaybe-uninitialized reports once they are
// inlined (GCC bug 105593, fixed in 13): quiet in the header's own lines only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#elif defined(__x86_64__)
#include <immintrin.h>
#endif

#include "llama2/kernels/vector_math.h"
#include "llama2/util/test_hooks.h"

namespace llama2 {
namespace {

// A row of Acc<T> in T: bf16 converted (from_acc_row), fp32 and fp64 copied unless p is x itself.
template <typename T>
void store_inputs(const Acc<T>* x, T* p, int64_t n) {
  if constexpr (std::is_same_v<T, Acc<T>>) {
    if (p != x) std::copy(x, x + n, p);
  } else {
    from_acc_row(x, p, n);
  }
}

template <typename T>
LLAMA2_CPU_CLONES Acc<T> max_row_portable(const Acc<T>* z, int64_t n) {
  Acc<T> top = z[0];
#pragma omp simd reduction(max : top)
  for (int64_t i = 0; i < n; ++i) top = top > z[i] ? top : z[i];
  return top;
}

template <typename T>
LLAMA2_CPU_CLONES Acc<T> exp_sum_row_portable(Acc<T>* z, int64_t n, Acc<T> scale, Acc<T> shift, T* p) {
  Acc<T> sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    const Acc<T> e = vector_exp(z[i] * scale - shift);
    z[i] = e;
    sum += e;
  }
  store_inputs(z, p, n);
  return sum;
}

template <typename T>
LLAMA2_CPU_CLONES void softmax_gradient_row_portable(Acc<T>* z, Acc<T>* dp, int64_t n, Acc<T> scale,
                                                     const Acc<T>* lse, const Acc<T>* D, T* p, T* ds) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const Acc<T> e = vector_exp(z[i] * scale - lse[i]);
    z[i] = e;
    dp[i] = e * (dp[i] - D[i]) * scale;
  }
  store_inputs(z, p, n);
  store_inputs(dp, ds, n);
}

// online_softmax_rows' loop over a tile's rows: row r's keys [0, visible) through max_row(z, visible) and
// exp_sum(z, visible, shift, p) (p ← exp(z·scale − shift), returning the sum), the masked rest of p zeroed, m, l
// and o brought up to date. Inlined into each form with its row functions.
template <typename T, typename MaxRow, typename ExpSum>
LLAMA2_INLINE void online_tile(Acc<T>* z, int64_t rows, int64_t n, int64_t diagonal, Acc<T> scale, bool first,
                               Acc<T>* m, Acc<T>* l, Acc<T>* o, int64_t d, T* p, const MaxRow& max_row,
                               const ExpSum& exp_sum) {
  using A = Acc<T>;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t visible = std::min(r + diagonal + 1, n);
    const A top = max_row(z + r * n, visible) * scale;  // scale > 0
    const A max = first ? top : std::max(m[r], top);
    const A sum = exp_sum(z + r * n, visible, max, p + r * n);
    std::fill(p + r * n + visible, p + (r + 1) * n, T(0));
    if (first) {
      l[r] = sum;
    } else {
      const A alpha = vector_exp(m[r] - max);
      l[r] = l[r] * alpha + sum;
      A* orow = o + r * d;
#pragma omp simd
      for (int64_t k = 0; k < d; ++k) orow[k] *= alpha;
    }
    m[r] = max;
  }
}

// The portable form: calls per row to the row loops' clones for this CPU.
template <typename T>
void online_softmax_rows_portable(Acc<T>* z, int64_t rows, int64_t n, int64_t diagonal, Acc<T> scale, bool first,
                                  Acc<T>* m, Acc<T>* l, Acc<T>* o, int64_t d, T* p) {
  online_tile(
      z, rows, n, diagonal, scale, first, m, l, o, d, p,
      [](const Acc<T>* zr, int64_t visible) { return max_row_portable<T>(zr, visible); },
      [&](Acc<T>* zr, int64_t visible, Acc<T> shift, T* pr) {
        return exp_sum_row_portable(zr, visible, scale, shift, pr);
      });
}

// softmax_gradient_rows' loop over a tile's rows: row j's masked entries [0, from) zeroed, then row(z, dp, m,
// from, p, ds) on the rest, from = clamp(j − diagonal, 0, n). Inlined into each form with its row function.
template <typename T, typename Row>
LLAMA2_INLINE void gradient_tile(Acc<T>* z, Acc<T>* dp, int64_t count, int64_t n, int64_t diagonal, T* p, T* ds,
                                 const Row& row) {
  for (int64_t j = 0; j < count; ++j) {
    const int64_t from = std::clamp<int64_t>(j - diagonal, 0, n), at = j * n;
    std::fill(p + at, p + at + from, T(0));
    std::fill(ds + at, ds + at + from, T(0));
    row(z + at + from, dp + at + from, n - from, from, p + at + from, ds + at + from);
  }
}

// The portable form: a call per row to the row loop's clone for this CPU.
template <typename T>
void softmax_gradient_rows_portable(Acc<T>* z, Acc<T>* dp, int64_t count, int64_t n, int64_t diagonal, Acc<T> scale,
                                    const Acc<T>* lse, const Acc<T>* D, T* p, T* ds) {
  gradient_tile(z, dp, count, n, diagonal, p, ds,
                [&](Acc<T>* zj, Acc<T>* dpj, int64_t m, int64_t from, T* pj, T* dsj) {
                  softmax_gradient_row_portable(zj, dpj, m, scale, lse + from, D + from, pj, dsj);
                });
}

#if defined(__x86_64__)
#define LLAMA2_AVX512_BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16")))

// Whether the AVX-512 forms run: the CPU has AVX512-BF16, and no test asked for the portable loops.
bool has_avx512_bf16() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512bf16") && !test_hooks().portable_kernels;
  return has;
}

// vector_exp's reduction and polynomial on 16 lanes, with 2^n applied by vscalefps: 0 (through the subnormals)
// below about −87.3 instead of vector_exp's clamp, ∞ above 88.7, NaN stays NaN (the lower clamp at −104, where
// 2^n is already 0, keeps −∞ from making the reduction ∞ − ∞).
LLAMA2_AVX512_BF16 inline __m512 exp16(__m512 x) {
  using C = ExpConstants;
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);  // NaN in x: x (the second operand)
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(C::kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(C::kLn2High), x);  // x − n·ln2, ln2 in two parts
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(C::kLn2Low), r);
  __m512 e = _mm512_set1_ps(C::kPoly[0]);
  for (int i = 1; i < 6; ++i) e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(C::kPoly[i]));
  return _mm512_scalef_ps(e, n);
}

// 2^t on 16 lanes to what bf16 keeps: t = n + f with |f| ≤ 1/2, a degree-3 polynomial for 2^f (minimax relative
// error 7.5e-5, under a twentieth of bf16's half step 2^-9; fitted by Lawson's iteration), 2^n by vscalefps; 0
// below −150 (through the subnormals), NaN stays NaN. 8 instructions where exp16 takes 11.
LLAMA2_AVX512_BF16 inline __m512 exp2_bf16(__m512 t) {
  t = _mm512_max_ps(_mm512_set1_ps(-150.0f), t);  // NaN in t: t (the second operand)
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 e = _mm512_fmadd_ps(_mm512_set1_ps(5.517170206e-2f), f, _mm512_set1_ps(2.426111996e-1f));
  e = _mm512_fmadd_ps(e, f, _mm512_set1_ps(6.932609677e-1f));
  e = _mm512_fmadd_ps(e, f, _mm512_set1_ps(9.999280572e-1f));
  return _mm512_scalef_ps(e, n);
}

// The lanes of [i, i + 16) below n.
inline __mmask16 lanes(int64_t i, int64_t n) {
  return n - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
}

LLAMA2_AVX512_BF16 inline void store16(float* p, __mmask16 m, __m512 v) { _mm512_mask_storeu_ps(p, m, v); }
LLAMA2_AVX512_BF16 inline void store16(c10::BFloat16* p, __mmask16 m, __m512 v) {
  _mm256_mask_storeu_epi16(p, m, (__m256i)_mm512_cvtneps_pbh(v));
}

// step(i, m) for the 16-lane blocks of [0, n): the whole ones with a constant mask (none to compute), then the tail.
template <typename Step>
LLAMA2_AVX512_BF16 inline void for_each_16(int64_t n, const Step& step) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) step(i, __mmask16(0xFFFF));
  if (i < n) step(i, lanes(i, n));
}

// The exps of rows kept in T: fp32's (exp16) for fp32 rows, bf16's (exp2_bf16) for bf16 rows, whose probabilities
// are rounded to 8 bits (their sums, in fp32, carry exp2_bf16's error, 7.5e-5).
template <typename T>
constexpr bool kBf16Exp = std::is_same_v<T, c10::BFloat16>;

template <typename T>
LLAMA2_AVX512_BF16 inline float exp_sum_row_avx512(const float* z, int64_t n, float scale, float shift, T* p) {
  const float unit = kBf16Exp<T> ? ExpConstants::kLog2e : 1.0f;  // bf16: the argument in base 2
  const __m512 s = _mm512_set1_ps(scale * unit), sh = _mm512_set1_ps(shift * unit);
  __m512 sum = _mm512_setzero_ps();
  for_each_16(n, [&](int64_t i, __mmask16 m) LLAMA2_AVX512_BF16 {
    const __m512 x = _mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, z + i), s, sh);
    const __m512 e = kBf16Exp<T> ? exp2_bf16(x) : exp16(x);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
    store16(p + i, m, e);
  });
  return _mm512_reduce_add_ps(sum);
}

LLAMA2_AVX512_BF16 inline float max_row_avx512(const float* z, int64_t n) {
  __m512 top = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for_each_16(n, [&](int64_t i, __mmask16 m) LLAMA2_AVX512_BF16 {
    top = _mm512_mask_max_ps(top, m, top, _mm512_maskz_loadu_ps(m, z + i));
  });
  return _mm512_reduce_max_ps(top);
}

template <typename T>
LLAMA2_AVX512_BF16 void online_softmax_rows_avx512(float* z, int64_t rows, int64_t n, int64_t diagonal, float scale,
                                                   bool first, float* m, float* l, float* o, int64_t d, T* p) {
  online_tile(
      z, rows, n, diagonal, scale, first, m, l, o, d, p,
      [](const float* zr, int64_t visible) LLAMA2_AVX512_BF16 { return max_row_avx512(zr, visible); },
      [&](float* zr, int64_t visible, float shift, T* pr) LLAMA2_AVX512_BF16 {
        return exp_sum_row_avx512(zr, visible, scale, shift, pr);
      });
}

template <typename T>
LLAMA2_AVX512_BF16 inline void softmax_gradient_row_avx512(const float* z, const float* dp, int64_t n, float scale,
                                                           const float* lse, const float* D, T* p, T* ds) {
  const __m512 s = _mm512_set1_ps(scale);
  for_each_16(n, [&](int64_t i, __mmask16 m) LLAMA2_AVX512_BF16 {
    const __m512 x = _mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, z + i), s, _mm512_maskz_loadu_ps(m, lse + i));
    const __m512 e = kBf16Exp<T> ? exp2_bf16(_mm512_mul_ps(x, _mm512_set1_ps(ExpConstants::kLog2e))) : exp16(x);
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, dp + i), _mm512_maskz_loadu_ps(m, D + i));
    store16(p + i, m, e);
    store16(ds + i, m, _mm512_mul_ps(_mm512_mul_ps(e, d), s));
  });
}

template <typename T>
LLAMA2_AVX512_BF16 void softmax_gradient_rows_avx512(float* z, float* dp, int64_t count, int64_t n, int64_t diagonal,
                                                     float scale, const float* lse, const float* D, T* p, T* ds) {
  gradient_tile(z, dp, count, n, diagonal, p, ds,
                [&](float* zj, float* dpj, int64_t m, int64_t from, T* pj, T* dsj) LLAMA2_AVX512_BF16 {
                  softmax_gradient_row_avx512(zj, dpj, m, scale, lse + from, D + from, pj, dsj);
                });
}

#endif

}  // namespace

template <typename T>
void online_softmax_rows(Acc<T>* z, int64_t rows, int64_t n, int64_t diagonal, Acc<T> scale, bool first, Acc<T>* m,
                         Acc<T>* l, Acc<T>* o, int64_t d, T* p) {
#if defined(__x86_64__)
  if constexpr (std::is_same_v<Acc<T>, float>)
    if (has_avx512_bf16()) return online_softmax_rows_avx512(z, rows, n, diagonal, scale, first, m, l, o, d, p);
#endif
  online_softmax_rows_portable(z, rows, n, diagonal, scale, first, m, l, o, d, p);
}

template <typename T>
void softmax_gradient_rows(Acc<T>* z, Acc<T>* dp, int64_t count, int64_t n, int64_t diagonal, Acc<T> scale,
                           const Acc<T>* lse, const Acc<T>* D, T* p, T* ds) {
#if defined(__x86_64__)
  if constexpr (std::is_same_v<Acc<T>, float>)
    if (has_avx512_bf16()) return softmax_gradient_rows_avx512(z, dp, count, n, diagonal, scale, lse, D, p, ds);
#endif
  softmax_gradient_rows_portable(z, dp, count, n, diagonal, scale, lse, D, p, ds);
}

#define LLAMA2_SOFTMAX_ROWS(T)                                                                                 \
  template void online_softmax_rows<T>(Acc<T>*, int64_t, int64_t, int64_t, Acc<T>, bool, Acc<T>*, Acc<T>*, Acc<T>*, \
                                       int64_t, T*);                                                           \
  template void softmax_gradient_rows<T>(Acc<T>*, Acc<T>*, int64_t, int64_t, int64_t, Acc<T>, const Acc<T>*, \
                                         const Acc<T>*, T*, T*);
LLAMA2_SOFTMAX_ROWS(float)
LLAMA2_SOFTMAX_ROWS(c10::BFloat16)
LLAMA2_SOFTMAX_ROWS(double)

}  // namespace llama2
