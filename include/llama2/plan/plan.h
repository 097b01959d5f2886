// Owns the arithmetic of a run before it starts: parameter count, model FLOPs per token, the bytes per
// rank of weights, gradients, optimizer state and activations, and the step time from machine rates.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llama2/config/config.h"
#include "llama2/config/train_options.h"

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
  bool fp32_main_grads = true;  // with bf16: gradients accumulate and are reduced in fp32
  bool packed_weights = false;  // GEMM weights also held in oneDNN's layout (packed_weights.h)
  bool async_save = false;      // a checkpoint's snapshot in host memory while it is written
  int64_t grad_bytes_per_param() const { return bf16 && !fp32_main_grads ? 2 : 4; }
};

// The memory plan's input for these training flags at this layout (--pack_weights auto resolved on this CPU).
MemoryPlanInput memory_plan_input(const TrainOptions& options, int64_t tp, int64_t dp);

struct MemoryPlan {
  int64_t local_params = 0;      // parameters held by one rank (its TP shards, vocab padded)
  int64_t weight_bytes = 0;
  int64_t packed_bytes = 0;      // the GEMM weights' packed copies, forward and data gradient (oneDNN may read
                                 // one of them in place: an upper bound)
  int64_t grad_bytes = 0;
  int64_t optimizer_bytes = 0;   // fp32 master (if bf16) + exp_avg + exp_avg_sq, / dp with ZeRO-1
  int64_t reduce_bytes = 0;      // the DP reduction's result: ZeRO-1's shard, and its fp32 copy for bf16 grads
  int64_t activation_bytes = 0;  // kept for backward during one micro-batch, as the heap holds them
  int64_t loss_bytes = 0;        // the fused loss: a chunk of logits, dw, dx
  int64_t runtime_bytes = 0;     // the process itself: libtorch, oneDNN, Open MPI (measured)
  int64_t snapshot_bytes = 0;    // --async_save: the copy of what a rank saves (its optimizer shard; fp32 weights)
  int64_t total() const {
    return weight_bytes + packed_bytes + grad_bytes + optimizer_bytes + reduce_bytes + activation_bytes + loss_bytes +
           runtime_bytes + snapshot_bytes;
  }
};

MemoryPlan plan_memory(const ModelConfig& config, const MemoryPlanInput& input);

// The forward GEMM shapes (m, k, n) of one micro-batch on one TP rank: qkv, o, gate/up, down, lm_head.
struct GemmShape {
  const char* name;
  int64_t m, k, n;
};
std::vector<GemmShape> model_gemm_shapes(const ModelConfig& config, int64_t tokens, int64_t tp);

// The FLOPs core attention's tiles execute for one layer of b sequences of s tokens over `width` = this rank's
// query heads × head_dim: forward, and backward with its recompute (3.5 × the forward), causal tiles only.
double attention_flops(double b, double s, double width);

// Per-rank rates of the machine a step estimate divides by (measured by machine_rates.h, or given).
struct MachineRates {
  double peak_flops = 0;              // the fastest forward GEMM of the projections' shapes: the MFU denominator
  double gemm_flops = 0;              // the projections' GEMMs (forward, data and weight gradient) on their shapes
  double loss_flops = 0;              // the fused lm_head and loss (forward and backward), in lm_head GEMM FLOP/s
  double attention_flops = 0;         // core attention, forward and backward, in attention_flops() per second
  double memory_bytes_per_s = 0;      // streaming kernels: norms, SwiGLU, rotary, softmax, optimizer
  double intra_node_bytes_per_s = 0;  // collectives among the ranks of one node
  double network_bytes_per_s = 0;     // per node, between nodes (shared by the node's ranks)
};

struct StepPlanInput {
  int64_t grad_accum = 1, nodes = 1, ranks_per_node = 1;
  bool overlap_grad_reduce = true;
};

// Seconds per optimizer step on one rank, by phase (the names of the training breakdown).
struct StepEstimate {
  double gemm = 0, attention = 0, loss = 0, elementwise = 0, communication = 0, grad_reduce = 0, optimizer = 0;
  double total() const { return gemm + attention + loss + elementwise + communication + grad_reduce + optimizer; }
};

StepEstimate estimate_step(const ModelConfig& config, const MemoryPlanInput& input, const StepPlanInput& step,
                           const MachineRates& rates);

// The human-readable report printed by `llama2_pretrain plan` (and at start-up); with `rates`, also the
// step-time estimate and its MFU.
std::string format_plan(const ModelConfig& config, const MemoryPlanInput& input, const StepPlanInput& step,
                        const MachineRates* rates = nullptr);

}  // namespace llama2
