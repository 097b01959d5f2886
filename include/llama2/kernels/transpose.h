// Owns out-of-place transposition of row-major tiles (the fused loss's gradient tiles, a GEMM source that oneDNN's
// AMX and brgemm kernels take only untransposed): 16 × 16 blocks in registers, the edges element by element.
#pragma once
#include <cstdint>

#include <c10/util/BFloat16.h>

namespace llama2 {

// y [cols, rows] (rows ldy elements apart) ← xᵀ for x [rows, cols] (ldx). x and y must not overlap.
void transpose(const float* x, int64_t rows, int64_t cols, int64_t ldx, float* y, int64_t ldy);
void transpose(const c10::BFloat16* x, int64_t rows, int64_t cols, int64_t ldx, c10::BFloat16* y, int64_t ldy);
void transpose(const double* x, int64_t rows, int64_t cols, int64_t ldx, double* y, int64_t ldy);

}  // namespace llama2
