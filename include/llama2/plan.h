// Owns the arithmetic of a run before it starts: parameter count, model FLOPs per token, and the
// bytes per rank of weights, gradients, optimizer state and activations for a layout.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llama2/config.h"

namespace llama2 {

int64_t parameter_count(const ModelConfig& config);
int64_t embedding_parameter_count(const ModelConfig& config);  // the input embedding alone

// Model FLOPs per trained token, PaLM's MFU convention: 6·N + 12·L·h·s, N without the input embedding
// (forward + backward of every weight, plus the attention score and value matmuls).
double flops_per_token(const ModelConfig& config, int64_t seq_len);

struct MemoryPlanInput {
  int64_t tp = 1, dp = 1;
  int64_t micro_batch = 1, seq_len = 1;
  bool bf16 = false, zero_1 = true;
};

struct MemoryPlan {
  int64_t local_params = 0;      // parameters held by one rank (its TP shards, vocab padded)
  int64_t weight_bytes = 0;
  int64_t grad_bytes = 0;
  int64_t optimizer_bytes = 0;   // fp32 master (if bf16) + exp_avg + exp_avg_sq, / dp with ZeRO-1
  int64_t activation_bytes = 0;  // kept for backward during one micro-batch
  int64_t total() const { return weight_bytes + grad_bytes + optimizer_bytes + activation_bytes; }
};

MemoryPlan plan_memory(const ModelConfig& config, const MemoryPlanInput& input);

// The forward GEMM shapes (m, k, n) of one micro-batch on one TP rank: qkv, o, gate/up, down, lm_head.
struct GemmShape {
  const char* name;
  int64_t m, k, n;
};
std::vector<GemmShape> model_gemm_shapes(const ModelConfig& config, int64_t tokens, int64_t tp);

// The human-readable report printed by `llama2_pretrain plan`.
std::string format_plan(const ModelConfig& config, const MemoryPlanInput& input, int64_t grad_accum);

std::string format_bytes(int64_t bytes);

}  // namespace llama2
