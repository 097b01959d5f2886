// Owns measuring this machine for `plan`'s step estimate: oneDNN GEMM FLOP/s on the model's own shapes (each linear
// layer's three GEMMs), core attention's and the fused lm_head + loss's FLOP/s as they run, and the bandwidth of
// ATen's streaming kernels on activation-sized tensors, with this process's threads.
#pragma once
#include <cstdint>

#include "llama2/config/config.h"
#include "llama2/plan/plan.h"

namespace llama2 {

// `tokens` per micro-batch and TP degree `tp` give the shapes; `bf16`: the GEMMs with bf16 inputs (mixed
// precision). Intra-node collectives are taken at half the memory bandwidth (shared-memory transports copy into
// and out of a shared segment); the network bandwidth is left 0 (one process cannot measure it). Each rate comes
// from this machine's rate cache (rate_cache.h) when it holds it, unless `remeasure`.
MachineRates measure_machine_rates(const ModelConfig& config, int64_t tokens, int64_t seq_len, int64_t tp, bool bf16,
                                   bool remeasure);

// The best FLOP/s of this process's threads over m×k·k×n GEMMs on oneDNN (the MFU denominator), fp32 or with
// bf16 inputs (fp32 accumulation, as mixed precision runs them): at least `repeats` timed calls, and more until
// `min_seconds` have passed, so that a noisy moment is outlasted; `batch` > 1: that many in one batched call.
double measure_gemm_flops(int64_t m, int64_t k, int64_t n, int repeats, bool bf16 = false, double min_seconds = 0,
                          int64_t batch = 1);

// The cores' raw instruction peak: FLOP/s of this process's threads each issuing 16 independent chains of 512-bit
// FMAs (fp32: 32 FLOPs an instruction) or, for bf16, 4 of AMX's tdpbf16ps (16384) where the CPU has AMX, else 16
// of vdpbf16ps (64); no memory touched: what no GEMM can pass on this CPU. With AVX2 only: 256-bit FMAs, and 0 for
// bf16. 0 off x86-64.
double measure_instruction_peak(bool bf16);

// Only the GEMM part of measure_machine_rates: peak_flops and gemm_flops set, the rest 0.
MachineRates measure_gemm_rates(const ModelConfig& config, int64_t tokens, int64_t tp, bool bf16, bool remeasure);

}  // namespace llama2
