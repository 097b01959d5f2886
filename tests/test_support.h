// Helpers shared by the tests: small configs, tolerance checks and the MPI context of the test run.
#pragma once
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "llama2/config/config.h"
#include "llama2/dist/communicator.h"
#include "llama2/model/llama.h"
#include "llama2/parallel/layers.h"
#include "reference_llama.h"

namespace llama2::testing {

DistributedContext& context();

// A small GQA config (4 heads, 2 kv heads) that runs in milliseconds.
inline ModelConfig small_config(int64_t vocab = 96, int64_t hidden = 32, int64_t layers = 2) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = 48;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  c.initializer_range = 0.2;  // larger than HF's default so attention is far from uniform
  return c;
}

// This process alone as the TP group (tp = 1, no SP): the unsharded model.
inline TensorParallel single_rank() { return {&Communicator::self(), false}; }

inline at::Tensor random_tokens(int64_t batch, int64_t seq, int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  return at::randint(vocab, {batch, seq}, at::kLong);
}

// max |a - b| / (atol + rtol·|b|) ≤ 1, reported with the worst element.
inline ::testing::AssertionResult all_close(const at::Tensor& a, const at::Tensor& b, double rtol, double atol) {
  if (a.sizes() != b.sizes())
    return ::testing::AssertionFailure() << "shapes differ: " << a.sizes() << " vs " << b.sizes();
  const at::Tensor ad = a.to(at::kDouble), bd = b.to(at::kDouble);
  const at::Tensor ratio = (ad - bd).abs() / (atol + rtol * bd.abs());
  const double worst = ratio.max().item<double>();
  if (worst <= 1.0) return ::testing::AssertionSuccess();
  const int64_t i = ratio.reshape({-1}).argmax().item<int64_t>();
  return ::testing::AssertionFailure() << "worst element " << i << ": " << ad.reshape({-1})[i].item<double>()
                                       << " vs " << bd.reshape({-1})[i].item<double>() << " (rtol " << rtol
                                       << ", atol " << atol << ")";
}

// |a - b| ≤ rtol·max|b| elementwise: relative to the tensor's scale, so tiny entries do not dominate.
inline ::testing::AssertionResult close_to_scale(const at::Tensor& a, const at::Tensor& b, double rtol) {
  return all_close(a, b, 0.0, rtol * b.abs().max().item<double>() + 1e-30);
}

// The fused, tiled vocab-parallel loss on `tp` (x [19, 2, 16] replicated: 38 tokens, two whole 16-row blocks of the
// gradient tiles' transposition and 6 rows over; this rank's vocabulary rows of w padded by at least 2 rows) against
// log_softmax of full fp64 logits from the same rounded inputs (libtorch autograd): the loss within 1e-5 relative,
// dx and this rank's dw rows within `grad_rtol` of their scale (the bf16 GEMMs read the gradient tiles rounded to
// bf16), padding rows of dw zero. x is scaled by `logit_scale`: at 100 the logits' spread (~120) takes rows past
// their first reference (the max of a worker's first tile) by more than exp's fp32 range (88). `what` names the
// case in failures.
inline void expect_cross_entropy_equals_fp64(const TensorParallel& tp, at::ScalarType dtype, int64_t vocab,
                                             int64_t chunk, double grad_rtol, const std::string& what,
                                             double logit_scale = 1) {
  const int64_t s = 19, b = 2, h = 16, t = tp.comm->size(), local = (vocab + 2 + t - 1) / t;
  at::manual_seed(3);
  const at::Tensor x = at::randn({s, b, h}).mul_(logit_scale).to(dtype).set_requires_grad(true);
  const at::Tensor w_full = at::randn({local * t, h}).mul_(0.3).to(dtype);
  const at::Tensor targets = at::randint(vocab, {s, b}, at::kLong);
  const at::Tensor w = w_full.narrow(0, tp.comm->rank() * local, local).contiguous().set_requires_grad(true);
  const at::Tensor loss = vocab_parallel_cross_entropy(x, w, targets, vocab, tp, chunk);
  loss.backward();

  const at::Tensor x64 = x.detach().to(at::kDouble).set_requires_grad(true);
  const at::Tensor w64 = w_full.to(at::kDouble).set_requires_grad(true);
  const at::Tensor logits = at::matmul(x64.reshape({-1, h}), w64.narrow(0, 0, vocab).t());  // [s·b, V]
  const at::Tensor ref = -logits.log_softmax(1).gather(1, targets.reshape({-1, 1})).mean();
  ref.backward();
  EXPECT_NEAR(loss.item<double>(), ref.item<double>(), 1e-5 * ref.item<double>()) << what;
  EXPECT_TRUE(close_to_scale(x.grad(), x64.grad(), grad_rtol)) << what << ": dx";
  const at::Tensor dw = w64.grad().narrow(0, tp.comm->rank() * local, local);
  EXPECT_TRUE(close_to_scale(w.grad(), dw, grad_rtol)) << what << ": dw";
  const int64_t padding = std::max<int64_t>(0, (tp.comm->rank() + 1) * local - vocab);
  if (padding > 0)
    EXPECT_EQ(w.grad().narrow(0, local - padding, padding).abs().max().item<float>(), 0.0f) << what << ": padding";
}

// The model's fused tp=1 parameters, unfused into Hugging Face names and shapes.
inline Weights unfused_weights(const Llama& model) {
  const ModelConfig& c = model.config();
  const int64_t q_rows = c.num_attention_heads * c.head_dim(), kv_rows = c.num_key_value_heads * c.head_dim();
  Weights w;
  for (const Parameter& p : model.parameters()) {
    const at::Tensor v = p.value.detach();
    const std::string base = p.name.substr(0, p.name.rfind('.', p.name.size() - 8) + 1);
    if (p.name.find("qkv_proj") != std::string::npos) {
      w[base + "q_proj.weight"] = v.narrow(0, 0, q_rows);
      w[base + "k_proj.weight"] = v.narrow(0, q_rows, kv_rows);
      w[base + "v_proj.weight"] = v.narrow(0, q_rows + kv_rows, kv_rows);
    } else if (p.name.find("gate_up_proj") != std::string::npos) {
      w[base + "gate_proj.weight"] = v.narrow(0, 0, c.intermediate_size);
      w[base + "up_proj.weight"] = v.narrow(0, c.intermediate_size, c.intermediate_size);
    } else {
      w[p.name] = v;
    }
  }
  return w;
}

}  // namespace llama2::testing
