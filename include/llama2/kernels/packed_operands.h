// Owns tile GEMMs' packed right operands: a matrix rewritten once in the layout oneDNN's brgemm kernels read b in,
// which a tile GEMM given a plain b copies it into on every call, and ranges of it read in place.
#pragma once
#include <cstddef>
#include <cstdint>

#include "llama2/kernels/matmul.h"

namespace llama2 {

// The layout: blocks of kPackedColumns columns one after another; in a block, its rows in groups of 16 (fp32) or of
// 16 pairs (bf16: rows 2i and 2i + 1 interleaved element by element, as vdpbf16ps reads them); within a group, the
// 16 rows (pairs) one after another, each kPackedColumns elements (pairs) long. Padding is zero.
inline constexpr int64_t kPackedColumns = 64;

// Whether pack takes x: fp32 or bf16 where tile GEMMs read packed operands (tile_packing), op(x) of an even number
// of rows, rows an even number of elements apart and 4-byte aligned for a transposed bf16 x (its rows' pairs are
// read as 32-bit words), and not already in the packed layout
// (plain fp32 of kPackedColumns columns, ld kPackedColumns, whole groups of rows: packing would copy it unchanged).
bool packable(const TileOperand& x);

// op(x) [rows, cols] packed into `out`, packed_bytes(x) bytes; returns the packed operand.
size_t packed_bytes(const TileOperand& x);
TileOperand pack(const TileOperand& x, void* out);

// Rows [r0, r0 + rows) of a packed operand of at most kPackedColumns columns (r0 a multiple of a group's rows;
// rows too, unless they reach x's last row), or its columns [c0, c0 + cols) (c0 a multiple of kPackedColumns):
// packed operands themselves, read in place.
TileOperand packed_rows(const TileOperand& x, int64_t r0, int64_t rows);
TileOperand packed_columns(const TileOperand& x, int64_t c0, int64_t cols);

}  // namespace llama2
