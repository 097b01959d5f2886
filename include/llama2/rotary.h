// Owns rotary position embedding in Hugging Face's rotate_half convention (pairs i and i + d/2).
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace llama2 {

// cos and sin tables [s, d] in fp32 for positions 0..s-1: angle(p, i) = p · theta^(-2(i mod d/2)/d).
struct RotaryTables {
  at::Tensor cos, sin;
  static RotaryTables make(int64_t seq_len, int64_t head_dim, double theta);
};

// x [s, b, n, d] → x·cos + rotate_half(x)·sin, with rotate_half(x) = cat(-x[d/2:], x[:d/2]).
at::Tensor apply_rotary(const at::Tensor& x, const RotaryTables& tables);

}  // namespace llama2
