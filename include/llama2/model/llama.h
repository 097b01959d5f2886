// Owns the Llama-2 model: its parameters (this rank's TP shards) and its forward pass.
// Knows nothing of optimizers or data; talks to other ranks only through layers.h / mappings.h.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "llama2/config/config.h"
#include "llama2/model/rotary.h"
#include "llama2/parallel/layers.h"
#include "llama2/parallel/sharding.h"

namespace llama2 {

struct Parameter {
  std::string name;                 // fused names: ...self_attn.qkv_proj.weight, ...mlp.gate_up_proj.weight
  at::Tensor value;                 // this rank's shard, requires grad
  std::vector<int64_t> full_shape;  // the tp=1 shape (vocab unpadded)
  ShardSpec spec;                   // how the full tensor maps to shards
  bool is_norm = false;             // RMSNorm weight: replicated over TP, no weight decay by default
};

struct ModelOptions {
  int64_t seq_len = 0;        // longest sequence the model will see (rotary tables)
  uint64_t seed = 0;          // same seed ⇒ same full model at any TP degree
  at::ScalarType dtype = at::kFloat;  // parameters and activations: fp32, bf16 (mixed precision) or fp64 (tests)
};

// The keys and values of the positions decoded so far, per layer, for generation.
struct KvCache {
  std::vector<at::Tensor> k, v;  // per layer [b, nkv/tp, capacity, d], the model's dtype
  int64_t length = 0;            // positions filled
};

class Llama {
 public:
  Llama(const ModelConfig& config, const TensorParallel& tp, const ModelOptions& options);

  // tokens, targets [b, s] int64 → mean next-token loss over b·s tokens (fp32 scalar). loss_grad: the gradient
  // its backward will bring (1/grad_accum_usteps when the caller divides it so): the lm_head's gradient is added to
  // the weight's gradient buffer, where it has one, in the forward (vocab_parallel_cross_entropy).
  at::Tensor loss(const at::Tensor& tokens, const at::Tensor& targets, double loss_grad = 1) const;
  // tokens [b, s] → this rank's vocab shard of the logits [s, b, Vp/tp].
  at::Tensor logits(const at::Tensor& tokens) const;

  // Generation (no autograd; runs without sequence parallelism whatever the model trains with). An empty cache for `batch` sequences of up to
  // `capacity` positions (at most ModelOptions::seq_len).
  KvCache empty_cache(int64_t batch, int64_t capacity) const;
  // tokens [b, n] at positions cache.length.. → this rank's vocab shard of the last position's logits
  // [b, Vp/tp], the n positions' keys and values appended to `cache`. Equal to logits() of the whole prefix.
  at::Tensor extend(const at::Tensor& tokens, KvCache& cache) const;

  std::vector<Parameter>& parameters() { return params_; }
  const std::vector<Parameter>& parameters() const { return params_; }
  const ModelConfig& config() const { return config_; }
  const TensorParallel& tensor_parallel() const { return tp_; }

  // Set before a forward: its backward calls `hook` with the indexes of parameters whose gradients are
  // complete, a block at a time, last block first (for overlapping the DP reduction). nullptr: none.
  using GradientsReadyHook = std::function<void(const std::vector<size_t>&)>;
  void set_gradients_ready_hook(GradientsReadyHook hook) { ready_hook_ = std::move(hook); }

 private:
  struct Layer {
    size_t input_norm, qkv, o, post_norm, gate_up, down;  // indexes into params_
  };

  // Attention given the fused projection: qkv [s, b, (nq+2nkv)·d/tp] → [s, b, nq·d/tp].
  using Attend = std::function<at::Tensor(const at::Tensor& qkv)>;

  const at::Tensor& p(size_t index) const { return params_[index].value; }
  at::Tensor block(const at::Tensor& x, const Layer& layer, const TensorParallel& tp, const Attend& attend) const;
  at::Tensor final_hidden(const at::Tensor& tokens) const;
  // Once backward has produced the gradient of `x`, `params` are complete: tell the hook.
  void on_gradient(const at::Tensor& x, std::vector<size_t> params) const;

  ModelConfig config_;
  TensorParallel tp_;
  ModelOptions options_;
  std::vector<Parameter> params_;
  std::vector<Layer> layers_;
  size_t embed_ = 0, norm_ = 0, lm_head_ = 0;
  RotaryTables rotary_;   // [seq_len, head_dim] each
  GradientsReadyHook ready_hook_;
};

// The parameters at TP degree `tp` without values: names, full shapes, shard specs, in model order.
std::vector<Parameter> parameter_layout(const ModelConfig& config, int64_t tp);

// The shape of a parameter's shard at TP degree `tp` (vocab rows padded).
std::vector<int64_t> local_shape(const Parameter& param, int64_t tp);

// Deterministic full (tp=1) initial value of parameter `index`: N(0, initializer_range²) for
// projections and embeddings, ones for norms; from (seed, index) alone.
at::Tensor initial_full_value(const Parameter& param, size_t index, uint64_t seed, double std);

}  // namespace llama2
