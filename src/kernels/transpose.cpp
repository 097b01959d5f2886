// Tile transposition: a 16 × 16 block is 16 vector registers, one row each, transposed in four rounds of
// two-source shuffles (one vpermt2w or vpermt2ps each on AVX-512); the edges element by element.
#include "llama2/kernels/transpose.h"

#include <cstring>

#include "llama2/kernels/vector_math.h"

namespace llama2 {
namespace {

constexpr int64_t kBlock = 16;

// A row of a block: 16 elements' bits in one vector (GCC and clang take no vector attribute on a template type).
template <typename E>
struct Row;
template <>
struct Row<uint16_t> {
  typedef uint16_t type __attribute__((vector_size(32)));
};
template <>
struct Row<uint32_t> {
  typedef uint32_t type __attribute__((vector_size(64)));
};
template <>
struct Row<uint64_t> {
  typedef uint64_t type __attribute__((vector_size(128)));
};

// Round b of the block transpose: in each 2b × 2b block of rows r, r + b, swap the off-diagonal b × b blocks
// (the upper right with the lower left). After b = 8, 4, 2, 1 the block is transposed. Lanes 16–31 of a
// shuffle's index are the second row's.
template <int b, typename V>
LLAMA2_INLINE void swap_round(V* rows) {
  for (int r = 0; r < kBlock; ++r) {
    if (r & b) continue;
    const V lo = rows[r], hi = rows[r + b];
    if constexpr (b == 8) {
      rows[r] = __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
      rows[r + b] = __builtin_shufflevector(lo, hi, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    } else if constexpr (b == 4) {
      rows[r] = __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
      rows[r + b] = __builtin_shufflevector(lo, hi, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    } else if constexpr (b == 2) {
      rows[r] = __builtin_shufflevector(lo, hi, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
      rows[r + b] = __builtin_shufflevector(lo, hi, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    } else {
      rows[r] = __builtin_shufflevector(lo, hi, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
      rows[r + b] = __builtin_shufflevector(lo, hi, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
    }
  }
}

// E: the elements' bits (uint16_t for bf16, uint32_t for fp32, uint64_t for fp64), moved unchanged.
template <typename E>
LLAMA2_CPU_CLONES void transpose_bits(const E* x, int64_t rows, int64_t cols, int64_t ldx, E* y, int64_t ldy) {
  using V = typename Row<E>::type;
  const auto by_element = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {  // rows [r0, r1), cols [c0, c1)
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t r = r0; r < r1; ++r) y[c * ldy + r] = x[r * ldx + c];
  };
  const int64_t full_rows = rows - rows % kBlock, full_cols = cols - cols % kBlock;
  for (int64_t r0 = 0; r0 < full_rows; r0 += kBlock) {
    for (int64_t c0 = 0; c0 < full_cols; c0 += kBlock) {
      V block[kBlock];
      for (int64_t r = 0; r < kBlock; ++r) std::memcpy(&block[r], x + (r0 + r) * ldx + c0, sizeof(V));
      swap_round<8>(block), swap_round<4>(block), swap_round<2>(block), swap_round<1>(block);
      for (int64_t c = 0; c < kBlock; ++c) std::memcpy(y + (c0 + c) * ldy + r0, &block[c], sizeof(V));
    }
  }
  by_element(0, full_rows, full_cols, cols);  // the right edge of the whole blocks' rows
  by_element(full_rows, rows, 0, cols);       // the bottom edge
}

}  // namespace

void transpose(const float* x, int64_t rows, int64_t cols, int64_t ldx, float* y, int64_t ldy) {
  transpose_bits(reinterpret_cast<const uint32_t*>(x), rows, cols, ldx, reinterpret_cast<uint32_t*>(y), ldy);
}

void transpose(const c10::BFloat16* x, int64_t rows, int64_t cols, int64_t ldx, c10::BFloat16* y, int64_t ldy) {
  transpose_bits(reinterpret_cast<const uint16_t*>(x), rows, cols, ldx, reinterpret_cast<uint16_t*>(y), ldy);
}

void transpose(const double* x, int64_t rows, int64_t cols, int64_t ldx, double* y, int64_t ldy) {
  transpose_bits(reinterpret_cast<const uint64_t*>(x), rows, cols, ldx, reinterpret_cast<uint64_t*>(y), ldy);
}

}  // namespace llama2
