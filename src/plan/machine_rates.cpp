// Measured GEMM, attention and memory rates for the step estimate.
#include "llama2/plan/machine_rates.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include <ATen/ATen.h>

#include <fmt/format.h>

#include "llama2/kernels/matmul.h"
#include "llama2/model/attention.h"
#include "llama2/plan/rate_cache.h"

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

// Core attention's rate, forward and backward as a training step runs them, in attention_flops() per second: one
// micro-batch of b sequences of seq_len tokens with this rank's heads (at most 8 query heads, the kv heads in
// proportion), inputs in the head-major layout rotary_qkv gives it; the best of 3 after a warm-up.
double measure_attention_flops(const ModelConfig& c, int64_t b, int64_t seq_len, int64_t tp, bool bf16) {
  const int64_t rep = c.num_attention_heads / c.num_key_value_heads, d = c.head_dim();
  const int64_t kv = std::clamp<int64_t>(8 / rep, 1, std::max<int64_t>(1, c.num_key_value_heads / tp));
  const at::TensorOptions options = at::TensorOptions().dtype(bf16 ? at::kBFloat16 : at::kFloat);
  const auto heads = [&](int64_t n) {  // [s, b, n, d] viewed from [b, n, s, d] storage
    return at::randn({b, n, seq_len, d}, options).permute({2, 0, 1, 3}).requires_grad_(true);
  };
  const at::Tensor q = heads(kv * rep), k = heads(kv), v = heads(kv);
  const at::Tensor d_out = at::randn({seq_len, b, kv * rep * d}, options);
  c10::AutoGradMode grad_mode(true);
  const double flops = attention_flops(static_cast<double>(b), static_cast<double>(seq_len), kv * rep * d);
  double best = 0;
  for (int trial = 0; trial < 4; ++trial) {
    const auto start = std::chrono::steady_clock::now();
    core_attention(q, k, v).backward(d_out);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (trial > 0) best = std::max(best, flops / seconds);
  }
  return best;
}

}  // namespace

double measure_gemm_flops(int64_t m, int64_t k, int64_t n, int repeats, bool bf16, double min_seconds,
                          int64_t batch) {
  const auto shape = [&](int64_t rows, int64_t cols) {
    return batch > 1 ? std::vector<int64_t>{batch, rows, cols} : std::vector<int64_t>{rows, cols};
  };
  const auto dtype = bf16 ? at::kBFloat16 : at::kFloat;
  const at::Tensor a = at::randn(shape(m, k)).to(dtype), b = at::randn(shape(n, k)).to(dtype);
  llama2::matmul(a, false, b, true);  // warm-up: primitive creation, page faults
  double best_s = 1e30, total_s = 0;
  for (int i = 0; i < repeats || total_s < min_seconds; ++i) {
    const auto start = std::chrono::steady_clock::now();
    llama2::matmul(a, false, b, true);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best_s = std::min(best_s, seconds);
    total_s += seconds;
  }
  return 2.0 * batch * m * k * n / best_s;
}

MachineRates measure_gemm_rates(const ModelConfig& c, int64_t tokens, int64_t tp, bool bf16, bool remeasure) {
  MachineRates r;
  // The projections' combined rate: total FLOPs over the sum of each shape's time (layers weigh L times).
  const std::vector<GemmShape> shapes = model_gemm_shapes(c, tokens, tp);
  double flops = 0, seconds = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const GemmShape& g = shapes[i];
    const double f = 2.0 * g.m * g.k * g.n * (i + 1 < shapes.size() ? c.num_hidden_layers : 1);
    const double rate = cached_rate(fmt::format("gemm {}x{}x{} {}", g.m, g.k, g.n, bf16 ? "bf16" : "fp32"), remeasure,
                                    [&] { return measure_gemm_flops(g.m, g.k, g.n, 3, bf16); });
    r.peak_flops = std::max(r.peak_flops, rate);
    flops += f;
    seconds += f / rate;
  }
  r.gemm_flops = flops / seconds;
  return r;
}

MachineRates measure_machine_rates(const ModelConfig& c, int64_t tokens, int64_t seq_len, int64_t tp, bool bf16,
                                   bool remeasure) {
  MachineRates r = measure_gemm_rates(c, tokens, tp, bf16, remeasure);
  const int64_t b = tokens / seq_len, stream = std::max<int64_t>(tokens * c.hidden_size, int64_t{1} << 24);
  r.attention_flops = cached_rate(
      fmt::format("attention b{} s{} heads {}/{} d{} tp{} {}", b, seq_len, c.num_attention_heads,
                  c.num_key_value_heads, c.head_dim(), tp, bf16 ? "bf16" : "fp32"),
      remeasure, [&] { return measure_attention_flops(c, b, seq_len, tp, bf16); });
  r.memory_bytes_per_s = cached_rate(fmt::format("stream {} floats", stream), remeasure,
                                     [&] { return measure_streaming_bandwidth(stream); });
  r.intra_node_bytes_per_s = r.memory_bytes_per_s / 2;
  return r;
}

}  // namespace llama2
