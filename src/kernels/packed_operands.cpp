// Packing of tile GEMMs' right operands. Seen as 32-bit words (an fp32, or a pair of bf16 from consecutive rows of
// op(x)), a block of kPackedColumns columns is a row-major [padded rows / pair, kPackedColumns] matrix of words: a
// transposed x's rows give them by 16 × 16 block transposition, a plain x's rows by copying (fp32) or interleaving
// two rows (bf16).
#include "llama2/kernels/packed_operands.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

#include "llama2/kernels/transpose.h"
#include "llama2/kernels/vector_math.h"
#include "llama2/util/errors.h"

namespace llama2 {
namespace {

int64_t pair(TileType type) { return type == TileType::BF16 ? 2 : 1; }         // elements in a word
int64_t group_rows(TileType type) { return 16 * pair(type); }                   // rows of op(x) in a group
int64_t padded(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }
int64_t op_rows(const TileOperand& x) { return x.transposed ? x.cols : x.rows; }
int64_t op_cols(const TileOperand& x) { return x.transposed ? x.rows : x.cols; }

// out[i] ← a[i] in the low half and b[i] in the high (b null: 0), for i < n.
LLAMA2_CPU_CLONES void interleave(const uint16_t* a, const uint16_t* b, int64_t n, uint32_t* out) {
  if (b == nullptr) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = a[i];
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = uint32_t{a[i]} | uint32_t{b[i]} << 16;
}

// op(x) = x: block c0 / kPackedColumns holds x's columns [c0, c0 + n), its word row w x's row w (fp32) or rows 2w and
// 2w + 1 interleaved (bf16).
void pack_plain(const TileOperand& x, uint32_t* out) {
  const int64_t p = pair(x.type), words = padded(x.rows, group_rows(x.type)) / p;
  for (int64_t c0 = 0; c0 < x.cols; c0 += kPackedColumns) {
    const int64_t n = std::min(kPackedColumns, x.cols - c0);
    uint32_t* block = out + c0 / kPackedColumns * words * kPackedColumns;
    for (int64_t w = 0; w * p < x.rows; ++w) {
      if (x.type == TileType::F32) {
        std::memcpy(block + w * kPackedColumns, static_cast<const float*>(x.data) + w * x.ld + c0, n * 4);
      } else {
        const auto* a = static_cast<const uint16_t*>(x.data) + 2 * w * x.ld + c0;
        interleave(a, 2 * w + 1 < x.rows ? a + x.ld : nullptr, n, block + w * kPackedColumns);
      }
    }
  }
}

// op(x) = xᵀ: x's row c (a column of op(x)) holds the words of column c, so each block is a transposed slice of x
// read as words.
void pack_transposed(const TileOperand& x, uint32_t* out) {
  const int64_t p = pair(x.type), words = padded(x.cols, group_rows(x.type)) / p, ldw = x.ld / p;
  const auto* in = static_cast<const float*>(x.data);  // words: fp32, or bf16 pairs (bits moved unchanged)
  for (int64_t c0 = 0; c0 < x.rows; c0 += kPackedColumns)
    transpose(in + c0 * ldw, std::min(kPackedColumns, x.rows - c0), x.cols / p, ldw,
              reinterpret_cast<float*>(out + c0 / kPackedColumns * words * kPackedColumns), kPackedColumns);
}

}  // namespace

bool packable(const TileOperand& x) {
  if (x.packed || !tile_packing(x.type)) return false;
  if (!x.transposed && x.type == TileType::F32 && x.cols == kPackedColumns && x.ld == kPackedColumns &&
      x.rows % group_rows(x.type) == 0)
    return false;  // already in the packed layout: oneDNN reads it as it is
  return !(x.transposed && x.type == TileType::BF16 &&
           (x.cols % 2 != 0 || x.ld % 2 != 0 || reinterpret_cast<uintptr_t>(x.data) % 4 != 0));
}

size_t packed_bytes(const TileOperand& x) {
  return padded(op_rows(x), group_rows(x.type)) * padded(op_cols(x), kPackedColumns) * 4 / pair(x.type);
}

TileOperand pack(const TileOperand& x, void* out) {
  if (!packable(x))
    throw RuntimeFailure(fmt::format("pack: a [{}, {}] operand (ld {}) that this CPU's tile GEMMs do not read packed",
                                     op_rows(x), op_cols(x), x.ld));
  if (op_rows(x) % group_rows(x.type) != 0 || op_cols(x) % kPackedColumns != 0)
    std::memset(out, 0, packed_bytes(x));  // the padding
  auto* words = static_cast<uint32_t*>(out);
  x.transposed ? pack_transposed(x, words) : pack_plain(x, words);
  return {out, op_rows(x), op_cols(x), 0, x.type, false, true};
}

TileOperand packed_rows(const TileOperand& x, int64_t r0, int64_t rows) {
  const int64_t group = group_rows(x.type);
  if (!x.packed || x.cols > kPackedColumns || r0 < 0 || r0 % group != 0 || r0 + rows > x.rows ||
      (rows % group != 0 && r0 + rows != x.rows))
    throw RuntimeFailure(fmt::format("packed_rows: rows [{}, {}) of a packed [{}, {}] operand are not one", r0,
                                     r0 + rows, x.rows, x.cols));
  TileOperand part = x;
  part.data = static_cast<const uint32_t*>(x.data) + r0 / pair(x.type) * kPackedColumns;
  part.rows = rows;
  return part;
}

TileOperand packed_columns(const TileOperand& x, int64_t c0, int64_t cols) {
  if (!x.packed || c0 < 0 || c0 % kPackedColumns != 0 || c0 + cols > x.cols)
    throw RuntimeFailure(fmt::format("packed_columns: columns [{}, {}) of a packed [{}, {}] operand are not one", c0,
                                     c0 + cols, x.rows, x.cols));
  TileOperand part = x;
  part.data = static_cast<const uint32_t*>(x.data) + c0 * padded(x.rows, group_rows(x.type)) / pair(x.type);
  part.cols = cols;
  return part;
}

}  // namespace llama2
