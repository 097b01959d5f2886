// Owns the vectorisable math of the hand-written kernels: an fp32 exp the compiler vectorises (libm's is a
// call per element), and LLAMA2_CPU_CLONES, which builds a kernel for x86-64-v4 (AVX-512), x86-64-v3 (AVX2) and
// x86-64 and picks one at load.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

// The loops vectorise at -O3 with -fno-trapping-math (CMakeLists.txt). A clone compiles per ISA only what is
// inlined into it: a kernel body it calls is LLAMA2_INLINE. Kernel templates are cloned per instantiation (fp32
// and bf16 alike) by GCC; clang, which builds only the sanitizer and fuzz builds here, clones no templates, so
// they get none. The levels, not single flags: `avx512f` alone leaves out AVX512VL and FMA, and GCC then builds
// 256-bit VEX loops with separate multiplies and adds.
#if defined(__x86_64__) && !defined(__clang__)
#define LLAMA2_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LLAMA2_CPU_CLONES
#endif
#define LLAMA2_INLINE inline __attribute__((always_inline))

namespace llama2 {

// exp(x) in fp32: Cody-Waite reduction x = n·ln2 + r, |r| ≤ ln2/2, a degree-5 polynomial for exp(r) with its
// first two coefficients 1 (so exp(0) = 1 exactly) and the other four fitted for minimax relative error (1.1e-7
// in exact arithmetic), and 2^n from the exponent bits. Relative error ≤ 3e-7 for −87.3 ≤ x ≤ 88.3; below, the
// clamp at −88 makes 2^n's exponent field 0, so the result is 0 from about −87.7 on (a subnormal between);
// exp(88.37) above; NaN stays NaN. Branch-free, so a loop of it vectorises.
// The reduction's constants and the polynomial's coefficients, highest degree first (softmax_rows' AVX-512 exp
// uses them too).
struct ExpConstants {
  static constexpr float kLog2e = 1.44269504088896341f;
  static constexpr float kLn2High = 0.693359375f, kLn2Low = -2.12194440e-4f;  // ln2 = kLn2High + kLn2Low
  static constexpr float kPoly[6] = {8.3125248633e-3f, 4.1890113151e-2f, 1.6667114465e-1f, 4.9999231792e-1f, 1.0f,
                                     1.0f};
};

inline float vector_exp(float x) {
  using C = ExpConstants;
  constexpr float kLo = -88.0f, kHi = 88.3762626647949f;
  constexpr float kRound = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer held in the low mantissa bits
  const float xc = std::min(std::max(x, kLo), kHi);
  const float t = xc * C::kLog2e + kRound;
  const float n = t - kRound;
  const float r = (xc - n * C::kLn2High) - n * C::kLn2Low;
  float p = C::kPoly[0];
  for (int i = 1; i < 6; ++i) p = p * r + C::kPoly[i];
  uint32_t bits;  // unsigned: NaN's bits wrap instead of overflowing (the product is NaN either way)
  std::memcpy(&bits, &t, sizeof bits);
  bits = (bits - 0x4B400000u + 127u) << 23;  // n + bias, in the exponent field (0 for n = −127)
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// fp64 (the gradient checks): libm's.
inline double vector_exp(double x) { return std::exp(x); }

}  // namespace llama2
