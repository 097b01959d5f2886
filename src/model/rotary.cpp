// Rotary embedding tables and their application, computed as HF's LlamaRotaryEmbedding does (fp32).
#include "llama2/rotary.h"

#include <ATen/ATen.h>

namespace llama2 {

RotaryTables RotaryTables::make(int64_t seq_len, int64_t head_dim, double theta) {
  const at::Tensor inv_freq =
      1.0 / at::pow(theta, at::arange(0, head_dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(head_dim));
  const at::Tensor freqs = at::outer(at::arange(seq_len, at::kLong).to(at::kFloat), inv_freq);  // [s, d/2]
  const at::Tensor angles = at::cat({freqs, freqs}, -1);                                         // [s, d]
  return {angles.cos(), angles.sin()};
}

at::Tensor apply_rotary(const at::Tensor& x, const RotaryTables& tables) {
  const int64_t s = x.size(0), d = x.size(3);
  const at::Tensor cos = tables.cos.narrow(0, 0, s).view({s, 1, 1, d}).to(x.scalar_type());
  const at::Tensor sin = tables.sin.narrow(0, 0, s).view({s, 1, 1, d}).to(x.scalar_type());
  const at::Tensor rotated = at::cat({-x.narrow(3, d / 2, d / 2), x.narrow(3, 0, d / 2)}, 3);
  return x * cos + rotated * sin;
}

}  // namespace llama2
