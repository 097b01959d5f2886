// The Llama-2 forward pass over TP shards: embedding → blocks → norm → vocab-parallel loss.
#include "llama2/model/llama.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include "llama2/dist/communicator.h"
#include "llama2/model/attention.h"
#include "llama2/model/rmsnorm.h"
#include "llama2/model/swiglu.h"
#include "llama2/util/errors.h"
#include "llama2/util/test_hooks.h"

namespace llama2 {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

at::Tensor initial_full_value(const Parameter& param, size_t index, uint64_t seed, double std) {
  if (param.is_norm) return at::ones(param.full_shape, at::kFloat);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(splitmix64(seed ^ splitmix64(index)));
  return at::normal(0.0, std, param.full_shape, gen);
}

std::vector<Parameter> parameter_layout(const ModelConfig& config, int64_t tp) {
  const int64_t h = config.hidden_size, d = config.head_dim(), inter = config.intermediate_size;
  const int64_t q_rows = config.num_attention_heads * d, kv_rows = config.num_key_value_heads * d;
  const ShardSpec vocab_rows{0, {config.vocab_size}, config.padded_vocab_size(tp)};
  std::vector<Parameter> params;
  const auto add = [&](const std::string& name, std::vector<int64_t> full_shape, ShardSpec spec, bool is_norm) {
    params.push_back({name, at::Tensor(), std::move(full_shape), std::move(spec), is_norm});
  };
  add("model.embed_tokens.weight", {config.vocab_size, h}, vocab_rows, false);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {  // kParamsPerLayer entries each
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    add(prefix + "input_layernorm.weight", {h}, {}, true);
    add(prefix + "self_attn.qkv_proj.weight", {q_rows + 2 * kv_rows, h}, {0, {q_rows, kv_rows, kv_rows}}, false);
    add(prefix + "self_attn.o_proj.weight", {h, q_rows}, {1, {}}, false);
    add(prefix + "post_attention_layernorm.weight", {h}, {}, true);
    add(prefix + "mlp.gate_up_proj.weight", {2 * inter, h}, {0, {inter, inter}}, false);
    add(prefix + "mlp.down_proj.weight", {h, inter}, {1, {}}, false);
  }
  add("model.norm.weight", {h}, {}, true);
  if (!config.tie_word_embeddings) add("lm_head.weight", {config.vocab_size, h}, vocab_rows, false);
  return params;
}

std::vector<int64_t> local_shape(const Parameter& param, int64_t tp) {
  std::vector<int64_t> shape = param.full_shape;
  if (param.spec.replicated()) return shape;
  const int64_t dim = param.spec.dim;
  shape[dim] = (param.spec.padded > 0 ? param.spec.padded : shape[dim]) / tp;
  return shape;
}

Llama::Llama(const ModelConfig& config, const TensorParallel& tp, const ModelOptions& options)
    : config_(config), tp_(tp), options_(options), params_(parameter_layout(config, tp.comm->size())) {
  const int64_t t = tp.comm->size();
  constexpr size_t kParamsPerLayer = 6;  // the order parameter_layout() adds them in
  for (size_t i = 0; i < static_cast<size_t>(config.num_hidden_layers); ++i) {
    const size_t first = 1 + kParamsPerLayer * i;
    layers_.push_back({first, first + 1, first + 2, first + 3, first + 4, first + 5});
  }
  norm_ = 1 + kParamsPerLayer * layers_.size();
  lm_head_ = config.tie_word_embeddings ? embed_ : norm_ + 1;
  for (size_t i = 0; i < params_.size(); ++i) {
    Parameter& param = params_[i];
    const at::Tensor full = initial_full_value(param, i, options.seed, config.initializer_range);
    param.value = shard(full, param.spec, t, tp.comm->rank()).to(options.dtype).set_requires_grad(true);
  }
  rotary_ = RotaryTables::make(options.seq_len, config.head_dim(), config.rope_theta);
}

// x [s(/tp), b, h] → [s(/tp), b, h]
at::Tensor Llama::block(const at::Tensor& x, const Layer& layer, const TensorParallel& tp, const Attend& attend) const {
  const double eps = config_.rms_norm_eps;
  // qkv [s, b, (nq+2nkv)·d] → attention [s, b, nq·d]
  const at::Tensor qkv = column_parallel_linear(rms_norm(x, p(layer.input_norm), eps), p(layer.qkv), tp);
  const at::Tensor h = x + row_parallel_linear(attend(qkv), p(layer.o), tp);

  const at::Tensor gate_up = column_parallel_linear(rms_norm(h, p(layer.post_norm), eps), p(layer.gate_up), tp);
  return h + row_parallel_linear(swiglu(gate_up), p(layer.down), tp);  // swiglu: [s, b, ffn]
}

// tokens [b, s] → final-norm output [s(/tp), b, h]
at::Tensor Llama::final_hidden(const at::Tensor& tokens) const {
  const int64_t t = tp_.comm->size();
  const int64_t nq = config_.num_attention_heads / t, nkv = config_.num_key_value_heads / t;
  const Attend causal = [&](const at::Tensor& qkv) {  // q, k, v [s, b, n, d] → [s, b, nq·d]
    const QkvHeads heads = rotary_qkv(qkv, nq, nkv, rotary_);
    const TestHooks& hooks = test_hooks();
    const at::Tensor out = hooks.reference_attention ? reference_attention(heads.q, heads.k, heads.v)
                                                     : core_attention(heads.q, heads.k, heads.v);
    return hooks.no_attention ? out * 0 : out;
  };
  at::Tensor x = vocab_parallel_embedding(tokens.t().contiguous(), p(embed_), tp_);
  for (const Layer& l : layers_) {
    on_gradient(x, {l.input_norm, l.qkv, l.o, l.post_norm, l.gate_up, l.down});  // the block's input
    x = block(x, l, tp_, causal);
  }
  // The final norm's input: the loss wrote the lm_head's gradient in its backward (tied: the embedding's,
  // which its own backward completes last).
  on_gradient(x, lm_head_ == embed_ ? std::vector<size_t>{norm_} : std::vector<size_t>{norm_, lm_head_});
  return rms_norm(x, p(norm_), config_.rms_norm_eps);
}

void Llama::on_gradient(const at::Tensor& x, std::vector<size_t> params) const {
  if (!ready_hook_ || !x.requires_grad()) return;
  x.register_hook([hook = ready_hook_, params = std::move(params)](const at::Tensor&) { hook(params); });
}

at::Tensor Llama::logits(const at::Tensor& tokens) const {
  return column_parallel_linear(final_hidden(tokens), p(lm_head_), tp_);
}

KvCache Llama::empty_cache(int64_t batch, int64_t capacity) const {
  if (capacity > rotary_.cos.size(0))
    throw BadInput(fmt::format("{} positions exceed the model's {} (ModelOptions::seq_len)", capacity,
                               rotary_.cos.size(0)));
  const int64_t nkv = config_.num_key_value_heads / tp_.comm->size();
  KvCache cache;
  for (size_t i = 0; i < layers_.size(); ++i) {
    cache.k.push_back(at::zeros({batch, nkv, capacity, config_.head_dim()}, at::TensorOptions(options_.dtype)));
    cache.v.push_back(at::zeros_like(cache.k.back()));
  }
  return cache;
}

at::Tensor Llama::extend(const at::Tensor& tokens, KvCache& cache) const {
  const TensorParallel tp{tp_.comm, false};  // a few positions at a time: not split over the sequence
  const int64_t t = tp_.comm->size(), n = tokens.size(1), past = cache.length;
  const int64_t nq = config_.num_attention_heads / t, nkv = config_.num_key_value_heads / t;
  const RotaryTables tables = rotary_.positions(past, n);
  at::Tensor x = vocab_parallel_embedding(tokens.t().contiguous(), p(embed_), tp);  // [n, b, h]
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Attend cached = [&](const at::Tensor& qkv) {
      const QkvHeads heads = rotary_qkv(qkv, nq, nkv, tables);
      return cached_attention(heads.q, heads.k, heads.v, cache.k[i], cache.v[i], past);
    };
    x = block(x, layers_[i], tp, cached);
  }
  cache.length += n;
  const at::Tensor last = rms_norm(x.narrow(0, n - 1, 1), p(norm_), config_.rms_norm_eps);  // [1, b, h]
  return column_parallel_linear(last, p(lm_head_), tp)[0];                                   // [b, Vp/tp]
}

at::Tensor Llama::loss(const at::Tensor& tokens, const at::Tensor& targets, double loss_grad) const {
  return vocab_parallel_cross_entropy(final_hidden(tokens), p(lm_head_), targets.t(), config_.vocab_size, tp_, 0,
                                      loss_grad);
}

}  // namespace llama2
