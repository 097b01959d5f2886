// Owns rotary position embedding in Hugging Face's rotate_half convention (pairs i and i + d/2), fused with the
// split of the QKV projection into the head-major layout core attention reads.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace llama2 {

// cos and sin tables [s, d] in fp32 for positions 0..s-1: angle(p, i) = p · theta^(-2(i mod d/2)/d).
struct RotaryTables {
  at::Tensor cos, sin;
  static RotaryTables make(int64_t seq_len, int64_t head_dim, double theta);
  // The rows of positions [first, first + count) (views): rotary for tokens that continue a cached prefix.
  RotaryTables positions(int64_t first, int64_t count) const;
};

struct QkvHeads {
  at::Tensor q, k, v;  // [s, b, nq, d], [s, b, nkv, d], [s, b, nkv, d]; each [b, n, s, d] in memory
};

// qkv [s, b, (nq + 2·nkv)·d] → q and k rotated, x·cos + rotate_half(x)·sin with rotate_half(x) =
// cat(-x[d/2:], x[:d/2]), and v as is. One pass forward, one backward (the inverse rotation); math in fp32
// (fp64 for fp64).
QkvHeads rotary_qkv(const at::Tensor& qkv, int64_t nq, int64_t nkv, const RotaryTables& tables);

}  // namespace llama2
