// Measured GEMM, attention and memory rates for the step estimate.
#include "llama2/plan/machine_rates.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <fmt/format.h>

#include "llama2/dist/communicator.h"
#include "llama2/kernels/matmul.h"
#include "llama2/model/attention.h"
#include "llama2/parallel/layers.h"
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

// The best seconds of 3 calls of work after a warm-up call.
double best_seconds(const std::function<void()>& work) {
  work();
  double best = 1e30;
  for (int trial = 0; trial < 3; ++trial) {
    const auto start = std::chrono::steady_clock::now();
    work();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// Core attention's rate, forward and backward as a training step runs them, in attention_flops() per second: one
// micro-batch of b sequences of seq_len tokens with this rank's heads (at most 8 query heads, the kv heads in
// proportion), inputs in the head-major layout rotary_qkv gives it.
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
  return flops / best_seconds([&] { core_attention(q, k, v).backward(d_out); });
}

// A linear layer's GEMMs on shape g (x [m, k], weight [n, k]) as it runs them, in FLOPs per second: the forward x·wᵀ,
// the data gradient dy·w, and the weight gradient dyᵀ·x added into an fp32 buffer (fp32 main gradients).
double measure_linear_flops(const GemmShape& g, bool bf16) {
  const at::TensorOptions options = at::TensorOptions().dtype(bf16 ? at::kBFloat16 : at::kFloat);
  const at::Tensor x = at::randn({g.m, g.k}, options), w = at::randn({g.n, g.k}, options);  // [m, k], [n, k]
  const at::Tensor dy = at::randn({g.m, g.n}, options);                                     // [m, n]
  at::Tensor dw = at::zeros({g.n, g.k});                                                    // [n, k] fp32
  const double seconds = best_seconds([&] { llama2::matmul(x, false, w, true); }) +
                         best_seconds([&] { llama2::matmul(dy, false, w, false); }) +
                         best_seconds([&] { llama2::matmul_into(dy, true, x, false, dw, true); });
  return 6.0 * g.m * g.k * g.n / seconds;
}

// The fused lm_head and loss's rate, forward and backward as a training step runs them, in the lm_head's GEMM FLOPs
// per second: `tokens` tokens against this rank's vocabulary shard (alone: the statistics' TP collectives are
// communication).
double measure_loss_flops(const ModelConfig& c, int64_t tokens, int64_t tp, bool bf16) {
  const int64_t h = c.hidden_size, vocab = c.padded_vocab_size(tp) / tp;
  const at::TensorOptions options = at::TensorOptions().dtype(bf16 ? at::kBFloat16 : at::kFloat);
  const at::Tensor x = at::randn({tokens, 1, h}, options).requires_grad_(true);            // [s, b, h]
  const at::Tensor w = (at::randn({vocab, h}, options) * 0.02).requires_grad_(true);       // [V/t, h]
  const at::Tensor targets = at::randint(vocab, {tokens, 1}, at::kLong);                   // [s, b]
  const TensorParallel alone{&Communicator::self(), false};
  c10::AutoGradMode grad_mode(true);
  return 6.0 * tokens * h * vocab /
         best_seconds([&] { vocab_parallel_cross_entropy(x, w, targets, vocab, alone).backward(); });
}

#if defined(__x86_64__)
constexpr int kChains = 16;  // independent accumulators: more than FMA latency × ports on any current core

// Each runs `iterations` rounds of kChains dependent-per-chain instructions; returns a sum so nothing is elided.
__attribute__((target("avx512f"))) float fma512_chains(int64_t iterations) {
  __m512 acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = _mm512_set1_ps(static_cast<float>(k));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
  for (int64_t i = 0; i < iterations; ++i)
    for (int k = 0; k < kChains; ++k) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
  for (int k = 1; k < kChains; ++k) acc[0] = _mm512_add_ps(acc[0], acc[k]);
  float out[16];
  _mm512_storeu_ps(out, acc[0]);
  return out[0] + out[15];
}

__attribute__((target("avx512f,avx512bf16"))) float dpbf16_chains(int64_t iterations) {
  __m512 acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = _mm512_set1_ps(static_cast<float>(k));
  const __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3F80));  // bf16 1.0
  const __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3400));  // bf16 2^-23
  for (int64_t i = 0; i < iterations; ++i)
    for (int k = 0; k < kChains; ++k) acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
  for (int k = 1; k < kChains; ++k) acc[0] = _mm512_add_ps(acc[0], acc[k]);
  float out[16];
  _mm512_storeu_ps(out, acc[0]);
  return out[0] + out[15];
}

__attribute__((target("avx2,fma"))) float fma256_chains(int64_t iterations) {
  __m256 acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = _mm256_set1_ps(static_cast<float>(k));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
  for (int64_t i = 0; i < iterations; ++i)
    for (int k = 0; k < kChains; ++k) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
  for (int k = 1; k < kChains; ++k) acc[0] = _mm256_add_ps(acc[0], acc[k]);
  float out[8];
  _mm256_storeu_ps(out, acc[0]);
  return out[0] + out[7];
}

// AMX: 4 accumulator tiles of 16 × 16 fp32, each round one tdpbf16ps into each from two A and two B tiles of
// 16 × 32 bf16 (16384 FLOPs an instruction). Linux gives a process the tiles' state only once asked (oneDNN asks too).
// AMX-BF16 and AMX-TILE: CPUID leaf 7's EDX bits 22 and 24 (clang 14's __builtin_cpu_supports lacks them).
bool amx_permitted() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool amx = __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) != 0 && (edx >> 22 & 1) != 0 && (edx >> 24 & 1) != 0;
  constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return amx && syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

struct TileConfig {  // the tile configuration's 64-byte layout (palette 1)
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

__attribute__((target("amx-tile,amx-bf16"))) float amx_chains(int64_t iterations) {
  TileConfig config;
  for (int t = 0; t < 8; ++t) config.bytes_per_row[t] = 64, config.rows[t] = 16;
  _tile_loadconfig(&config);
  alignas(64) uint16_t a[16 * 32], b[16 * 32];
  std::fill(std::begin(a), std::end(a), uint16_t{0x3F80});  // bf16 1.0
  std::fill(std::begin(b), std::end(b), uint16_t{0x3400});  // bf16 2^-23
  _tile_zero(0);  // the tile intrinsics are statements (inline assembly): one at a time
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, a, 64);
  _tile_loadd(5, a, 64);
  _tile_loadd(6, b, 64);
  _tile_loadd(7, b, 64);
  for (int64_t i = 0; i < iterations; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float out[16 * 16];
  _tile_stored(0, out, 64);
  _tile_release();
  return out[0];
}
#endif

}  // namespace

double measure_instruction_peak(bool bf16) {
#if defined(__x86_64__)
  float (*chains)(int64_t) = nullptr;
  double flops_per_iteration = 0;
  int64_t iterations = int64_t{1} << 25;  // about 0.1 s a trial: long enough for the OS to spread threads
  if (bf16 && amx_permitted()) chains = amx_chains, flops_per_iteration = 4 * 16384, iterations = int64_t{1} << 21;
  if (bf16 && chains == nullptr && __builtin_cpu_supports("avx512bf16"))
    chains = dpbf16_chains, flops_per_iteration = kChains * 64;
  if (!bf16 && __builtin_cpu_supports("avx512f")) chains = fma512_chains, flops_per_iteration = kChains * 32;
  if (!bf16 && chains == nullptr && __builtin_cpu_supports("fma"))
    chains = fma256_chains, flops_per_iteration = kChains * 16;
  if (chains == nullptr) return 0;
  const int threads = at::get_num_threads();
  double best = 0;
  std::vector<float> sink(static_cast<size_t>(threads));
  for (int trial = 0; trial < 5; ++trial) {  // the best: a trial whose threads shared a core runs at half the rate
    const auto start = std::chrono::steady_clock::now();
    at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) sink[static_cast<size_t>(t)] = chains(iterations);
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, threads * iterations * flops_per_iteration / seconds);
  }
  return sink[0] == -1.0f ? 0 : best;  // the sums are read, so the chains are not optimised away
#else
  return 0;
#endif
}

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
  // The projections' combined rate: total FLOPs over the sum of each shape's time (layers weigh L times), each
  // shape's time that of its three GEMMs as the linear layers run them.
  const std::vector<GemmShape> shapes = model_gemm_shapes(c, tokens, tp);
  double flops = 0, seconds = 0;
  for (size_t i = 0; i + 1 < shapes.size(); ++i) {
    const GemmShape& g = shapes[i];
    const double f = 6.0 * g.m * g.k * g.n * c.num_hidden_layers;
    const std::string name = fmt::format("{}x{}x{} {}", g.m, g.k, g.n, bf16 ? "bf16" : "fp32");
    const double rate = cached_rate("linear " + name, remeasure, [&] { return measure_linear_flops(g, bf16); });
    r.peak_flops = std::max(r.peak_flops, cached_rate("gemm " + name, remeasure, [&] {
                              return measure_gemm_flops(g.m, g.k, g.n, 3, bf16);
                            }));
    flops += f;
    seconds += f / rate;
  }
  r.gemm_flops = flops / seconds;
  return r;
}

MachineRates measure_machine_rates(const ModelConfig& c, int64_t tokens, int64_t seq_len, int64_t tp, bool bf16,
                                   bool remeasure) {
  MachineRates r = measure_gemm_rates(c, tokens, tp, bf16, remeasure);
  r.loss_flops = cached_rate(fmt::format("loss {} tokens, vocab {} x {} {}", tokens, c.padded_vocab_size(tp) / tp,
                                         c.hidden_size, bf16 ? "bf16" : "fp32"),
                             remeasure, [&] { return measure_loss_flops(c, tokens, tp, bf16); });
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
