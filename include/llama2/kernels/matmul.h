// Owns the GEMMs: every matrix product of the model runs here, on oneDNN's matmul primitive.
// Transposes are expressed as strides, never copied. Device choice for GEMMs lives here too.
#pragma once
#include <cstdint>
#include <type_traits>

#include <c10/util/BFloat16.h>

namespace at {
class Tensor;
}

namespace llama2 {

// Whether a GEMM's b is a model weight: with weight packing on (packed_weights.h), a 2-D weight is read from its
// copy in the layout oneDNN prefers.
enum class MatrixKind { Activation, Weight };

// op(a) @ op(b) for 2-D [m, k] or batched 3-D [batch, m, k] tensors whose rows are contiguous (any row and
// batch stride: narrowed views need no copy), where op(x) is x or its transpose over the last two dims. fp32 or
// bf16 inputs (same dtype) run on oneDNN, accumulating in fp32; fp64 (for gradient checks) falls back to
// libtorch. The result has the inputs' dtype.
at::Tensor matmul(const at::Tensor& a, bool transpose_a, const at::Tensor& b, bool transpose_b,
                  MatrixKind b_kind = MatrixKind::Activation);

// c = op(a) @ op(b), or c += op(a) @ op(b) with `accumulate`, into an existing c (rows contiguous, e.g. a
// narrowed view) of the product's shape; c may be fp32 for bf16 inputs (fp32 accumulation and output).
void matmul_into(const at::Tensor& a, bool transpose_a, const at::Tensor& b, bool transpose_b, at::Tensor& c,
                 bool accumulate, MatrixKind b_kind = MatrixKind::Activation);

// Element type of a tile GEMM's operand.
enum class TileType : int { F32, BF16, F64 };

// A row-major matrix in memory for tile_matmul: rows × cols elements, ld elements from one row's start to the
// next; `transposed`: the product uses its transpose (cols × rows).
struct TileOperand {
  const void* data;
  int64_t rows, cols, ld;
  TileType type;
  bool transposed = false;
  bool packed = false;  // packed (packed_operands.h): rows × cols of the product's operand, ld unused
};

// c [m, n] (ldc) = op(a)·op(b), or += with `accumulate`, for kernels that run many small GEMMs from their own
// parallel regions (core attention's tiles): no tensors, and oneDNN primitives cached per thread, each planned
// for the thread that runs it. a and b share a type (fp32 or bf16 on oneDNN, fp64 by plain loops for the
// gradient checks); c is fp32, or fp64 for fp64. b may be packed (packed_operands.h), then read as it is.
void tile_matmul(const TileOperand& a, const TileOperand& b, void* c, int64_t ldc, TileType c_type, bool accumulate);

// Whether this CPU's tile GEMMs of `type` read right operands packed (packed_operands.h) as they are: oneDNN picks
// that layout for them itself (elsewhere, e.g. without AVX-512, packing would only add a copy).
bool tile_packing(TileType type);

template <typename T>
constexpr TileType tile_type() {
  if constexpr (std::is_same_v<T, c10::BFloat16>) return TileType::BF16;
  if constexpr (std::is_same_v<T, double>) return TileType::F64;
  return TileType::F32;
}

// A row-major [rows, cols] matrix with rows ld elements apart, as a tile GEMM operand (its transpose if `t`).
template <typename T>
TileOperand matrix(const T* data, int64_t rows, int64_t cols, int64_t ld, bool t = false) {
  return {data, rows, cols, ld, tile_type<T>(), t};
}

inline TileOperand transposed(TileOperand x) {
  x.transposed = !x.transposed;
  return x;
}

// c (+)= op(a)·op(b) into a typed accumulator (fp32, or fp64 for fp64 operands) with rows ldc apart.
template <typename A>
void tile_matmul(const TileOperand& a, const TileOperand& b, A* c, int64_t ldc, bool accumulate) {
  tile_matmul(a, b, c, ldc, tile_type<A>(), accumulate);
}

}  // namespace llama2
