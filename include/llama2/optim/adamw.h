// Owns the optimizer: AdamW on fp32 master params, ZeRO-1 sharded over the DP group (or replicated),
// with flat parameter/gradient buffers, TP-aware global-norm clipping and decoupled weight decay.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "llama2/model/llama.h"
#include "llama2/optim/flat_layout.h"
#include "llama2/optim/grad_buckets.h"

namespace llama2 {

class Communicator;

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-6, weight_decay = 0.01;
  double max_grad_norm = 1.0;       // <= 0 disables clipping
  bool weight_decay_norms = false;  // RMSNorm weights decay too
  bool zero_1 = true;               // shard master params and moments over DP
  bool sequence_parallel = false;   // norm weights saw s/tp positions per rank: their grads are summed over TP
  int64_t bucket_numel = int64_t{8} << 20;  // elements per DP gradient bucket
  // For bf16 parameters: gradients accumulate over micro-steps and are reduced over DP in fp32 (Megatron's main
  // gradients; the GEMMs add dW into them in fp32) rather than in bf16 (the recipe's: half the bytes).
  bool fp32_main_grads = true;
};

// One AdamW update of equal-shape contiguous fp32 tensors in a single pass (torch.optim.AdamW's
// arithmetic) with the gradient multiplied by `grad_scale` (clipping); `decay` (0 or 1) scales the
// decoupled weight decay. `step` counts from 1. `rounded`, when defined (contiguous bf16, param's numel), gets
// the updated param rounded to nearest even in the same pass (a bf16 model's copy of its fp32 master).
void adamw_update(at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg, at::Tensor& exp_avg_sq,
                  double decay, int64_t step, double lr, const AdamWOptions& options, double grad_scale = 1,
                  const at::Tensor& rounded = at::Tensor());

struct StepResult {
  double grad_norm = 0;  // global, before clipping
  bool applied = false;  // false when the norm was not finite
};

class ShardedAdamW {
 public:
  // Re-homes every parameter and its .grad into flat buffers (params become views of them). A bf16 parameter's
  // .grad is an fp32 view with fp32_main_grads (autograd adds bf16 gradients into it in fp32).
  ShardedAdamW(std::vector<Parameter>& params, const Communicator& tp, const Communicator& dp,
               const AdamWOptions& options);

  // During the last micro-step's backward: these parameters' gradients are complete; the buckets they
  // complete start their DP reduction now (overlapping the rest of backward).
  void gradients_ready(const std::vector<size_t>& params);

  // After backward of all micro-steps: sums SP norm grads over TP, averages grads over DP
  // (reduce-scatter with ZeRO-1, all-reduce without; in buckets when overlapped, else one collective), clips,
  // updates (a bf16 model's parameters rounded from the master in the same pass), all-gathers params.
  StepResult step(double lr);
  void zero_grad();

  // The first part of step(): norm grads summed over TP (with SP), then the DP mean of the flat gradients,
  // fp32 [shard_numel] (this rank's ZeRO-1 range, or everything without ZeRO-1).
  at::Tensor reduce_gradients();
  int64_t shard_offset() const { return shard_offset_; }
  const FlatLayout& layout() const { return layout_; }

  // Bytes of fp32 optimizer state this rank holds, from its tensors (master params if separate, exp_avg, exp_avg_sq).
  int64_t state_bytes() const;
  int64_t step_count() const { return step_; }
  void set_step_count(int64_t step) { step_ = step; }

  // This rank's fp32 state over flat range [shard_offset, shard_offset + shard_numel) (for checkpoints).
  int64_t shard_numel() const { return layout_.shard_numel(); }
  bool zero_1() const { return options_.zero_1; }
  bool separate_master() const { return flat_params_.scalar_type() != at::kFloat; }
  at::Tensor& master() { return master_; }
  at::Tensor& exp_avg() { return exp_avg_; }
  at::Tensor& exp_avg_sq() { return exp_avg_sq_; }

 private:
  double global_grad_norm(const at::Tensor& grad_shard) const;
  // With ZeRO-1: every DP rank's updated shard of the flat parameters, gathered into all ranks' flat_params_.
  void gather_params();

  const Communicator& tp_;
  const Communicator& dp_;
  AdamWOptions options_;
  FlatLayout layout_;                                 // norm params first; shards: dp with ZeRO-1, else 1
  int64_t shard_offset_ = 0;                          // this rank's range starts here
  int64_t step_ = 0;
  at::Tensor flat_params_;  // [padded] model dtype; parameters are views into it
  at::Tensor flat_grads_;   // [padded] fp32 or the model dtype (fp32_main_grads); parameters' .grad are views
  at::Tensor master_;       // [shard] fp32; a view of flat_params_ when the model is fp32
  at::Tensor exp_avg_, exp_avg_sq_;  // [shard] fp32
  int64_t shard_norm_numel_ = 0;  // the first elements of this rank's shard that are norm weights
  std::unique_ptr<GradientBuckets> buckets_;  // the DP reduction of flat_grads_
};

}  // namespace llama2
