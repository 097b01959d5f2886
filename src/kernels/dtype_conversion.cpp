// Row conversion fp32 → bf16: the CPU's instruction where it has one (AVX512-BF16), picked once at first use; fp32
// added into bf16 storage.
#include "llama2/kernels/dtype_conversion.h"

#include <ATen/Parallel.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "llama2/kernels/vector_math.h"

namespace llama2 {
namespace {

LLAMA2_CPU_CLONES void add_scaled_row(const float* x, float scale, c10::BFloat16* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = from_acc<c10::BFloat16>(to_acc(y[i]) + scale * x[i]);
}

LLAMA2_CPU_CLONES void from_acc_row_portable(const float* x, c10::BFloat16* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = from_acc<c10::BFloat16>(x[i]);
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16"))) void from_acc_row_avx512_bf16(
    const float* x, c10::BFloat16* y, int64_t n) {
  auto* out = reinterpret_cast<uint16_t*>(y);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const auto tail = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(out + i, tail, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(tail, x + i)));
  }
}
#endif

using RowConversion = void (*)(const float*, c10::BFloat16*, int64_t);

RowConversion pick_row_conversion() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512bf16")) return from_acc_row_avx512_bf16;
#endif
  return from_acc_row_portable;
}

}  // namespace

void add_scaled_into(const float* x, float scale, c10::BFloat16* y, int64_t n) {
  at::parallel_for(0, n, int64_t{1} << 16, [&](int64_t begin, int64_t end) {
    add_scaled_row(x + begin, scale, y + begin, end - begin);
  });
}

void from_acc_row(const float* x, c10::BFloat16* y, int64_t n) {
  static const RowConversion convert = pick_row_conversion();
  convert(x, y, n);
}

}  // namespace llama2
