// Measured GEMM and memory rates for the step estimate.
#include "llama2/plan/machine_rates.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include <ATen/ATen.h>

#include "llama2/kernels/matmul.h"

namespace llama2 {
namespace {

// Bytes per second of `c = a + b` on fresh n-element fp32 tensors (allocation included, as in a training
// step): the median of 7 timings of 4 repetitions.
double measure_streaming_bandwidth(int64_t n) {
  const at::Tensor a = at::rand({n}), b = at::rand({n});
  std::vector<double> rates;
  for (int trial = 0; trial < 7; ++trial) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 4; ++i) at::Tensor c = a + b;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rates.push_back(4.0 * 3 * n * 4 / seconds);
  }
  std::nth_element(rates.begin(), rates.begin() + 3, rates.end());
  return rates[3];
}

}  // namespace

MachineRates measure_machine_rates(const ModelConfig& c, int64_t tokens, int64_t seq_len, int64_t tp, bool bf16) {
  MachineRates r;
  // The projections' combined rate: total FLOPs over the sum of each shape's time (layers weigh L times).
  const std::vector<GemmShape> shapes = model_gemm_shapes(c, tokens, tp);
  double flops = 0, seconds = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const GemmShape& g = shapes[i];
    const double f = 2.0 * g.m * g.k * g.n * (i + 1 < shapes.size() ? c.num_hidden_layers : 1);
    const double rate = measure_gemm_flops(g.m, g.k, g.n, 3, bf16);
    r.peak_flops = std::max(r.peak_flops, rate);
    flops += f;
    seconds += f / rate;
  }
  r.gemm_flops = flops / seconds;
  // Scores of one micro-batch: [b·heads/tp] batched [s, d]·[d, s] (GQA folds the heads the same way).
  r.attention_flops =
      measure_gemm_flops(seq_len, c.head_dim(), seq_len, 5, bf16, 0, tokens / seq_len * c.num_attention_heads / tp);
  r.memory_bytes_per_s = measure_streaming_bandwidth(std::max<int64_t>(tokens * c.hidden_size, int64_t{1} << 24));
  r.intra_node_bytes_per_s = r.memory_bytes_per_s / 2;
  return r;
}

}  // namespace llama2
