// Owns the conversions between a kernel's storage dtype and its accumulation type Acc<T> (fp32 for fp32 and bf16,
// fp64 for fp64): bf16 by bit operations, which vectorise where c10::BFloat16's do not, and whole rows by the
// CPU's conversion instruction where it has one.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <c10/util/BFloat16.h>

namespace llama2 {

template <typename T>
using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;

// Storage → accumulation: bf16 is the high half of an fp32.
template <typename T>
inline Acc<T> to_acc(T x) {
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    const uint32_t bits = static_cast<uint32_t>(x.x) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  } else {
    return x;
  }
}

// Accumulation → storage: bf16 rounded to nearest even (finite values and the default quiet NaN, the only ones
// the kernels produce, convert exactly as c10::BFloat16 does).
template <typename T>
inline T from_acc(Acc<T> x) {
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    bits += 0x7FFF + ((bits >> 16) & 1);
    return c10::BFloat16(static_cast<uint16_t>(bits >> 16), c10::BFloat16::from_bits());
  } else {
    return static_cast<T>(x);
  }
}

// y[i] ← x[i] for i < n, rounded to nearest even: with AVX512-BF16's vcvtneps2bf16 where the CPU has it (one
// instruction for 16 values, where from_acc's bit operations take six for 8; it also flushes magnitudes below
// fp32's normal range, 1.2e-38, to 0), else from_acc. x and y must not overlap.
void from_acc_row(const float* x, c10::BFloat16* y, int64_t n);

// y[i] ← y[i] + scale·x[i] for i < n, in fp32 and rounded once to nearest even (a bf16 gradient buffer taking an
// fp32 gradient: no fp32 temporary, as ATen's mixed-dtype add_ makes one of y's size). Parallel over the threads.
void add_scaled_into(const float* x, float scale, c10::BFloat16* y, int64_t n);

}  // namespace llama2
