// Core attention on oneDNN batched matmuls, GQA without repeating k/v, optional recompute of the probabilities.
#include "llama2/attention.h"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/matmul.h"
#include "llama2/phases.h"

namespace llama2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Queries are grouped by their kv head: q3 [b·nkv, rep·s, d] against k3, v3 [b·nkv, s, d], so one
// batched matmul serves all `rep` query heads of a kv head and k/v are never repeated in memory.
at::Tensor probabilities(const at::Tensor& q3, const at::Tensor& k3, const at::Tensor& mask, double scale) {
  at::Tensor scores = llama2::matmul(q3, false, k3, true);  // [B, rep·s, s]
  const int64_t s = k3.size(1);
  scores.mul_(scale).view({scores.size(0), -1, s, s}).add_(mask.to(scores.scalar_type()));
  if (scores.scalar_type() == at::kBFloat16)  // bf16: normalise in fp32, keep the probabilities in bf16
    return at::_softmax(scores.to(at::kFloat), -1, false).to(at::kBFloat16);
  return at::_softmax(scores, -1, false);
}

class CoreAttention : public torch::autograd::Function<CoreAttention> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q3, const at::Tensor& k3, const at::Tensor& v3,
                            const at::Tensor& mask, bool recompute) {
    ScopedPhase phase(Phase::Attention);
    const double scale = 1.0 / std::sqrt(static_cast<double>(q3.size(2)));
    at::Tensor p = probabilities(q3, k3, mask, scale);  // [B, rep·s, s]
    at::Tensor out = llama2::matmul(p, false, v3, false);       // [B, rep·s, d]
    ctx->save_for_backward({q3, k3, v3, mask, recompute ? at::Tensor() : p});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    ScopedPhase phase(Phase::Attention);
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q3 = saved[0], &k3 = saved[1], &v3 = saved[2];
    const double scale = ctx->saved_data["scale"].toDouble();
    const at::Tensor p = saved[4].defined() ? saved[4] : probabilities(q3, k3, saved[3], scale);
    const at::Tensor d_out = grads[0].contiguous();                 // [B, rep·s, d]
    const at::Tensor d_v = llama2::matmul(p, true, d_out, false);           // [B, s, d]
    const at::Tensor d_p = llama2::matmul(d_out, false, v3, true);          // [B, rep·s, s]
    at::Tensor d_scores = at::_softmax_backward_data(d_p, p, -1, p.scalar_type());
    d_scores.mul_(scale);
    const at::Tensor d_q = llama2::matmul(d_scores, false, k3, false);      // [B, rep·s, d]
    const at::Tensor d_k = llama2::matmul(d_scores, true, q3, false);       // [B, s, d]
    return {d_q, d_k, d_v, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor causal_mask(int64_t seq_len) {
  return at::full({seq_len, seq_len}, -10000.0f).triu_(1);
}

at::Tensor core_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                          bool recompute) {
  const int64_t s = q.size(0), b = q.size(1), nq = q.size(2), nkv = k.size(2), d = q.size(3);
  const int64_t rep = nq / nkv;
  ScopedPhase phase(Phase::Attention);  // the layout copies around the kernel too
  // [s, b, n, d] → [b, n, s, d]; query heads of one kv head are adjacent, so they fold into rows.
  const at::Tensor q3 = q.permute({1, 2, 0, 3}).contiguous().view({b * nkv, rep * s, d});
  const at::Tensor k3 = k.permute({1, 2, 0, 3}).contiguous().view({b * nkv, s, d});
  const at::Tensor v3 = v.permute({1, 2, 0, 3}).contiguous().view({b * nkv, s, d});
  const at::Tensor out = CoreAttention::apply(q3, k3, v3, mask, recompute);  // [b·nkv, rep·s, d]
  return out.view({b, nq, s, d}).permute({2, 0, 1, 3}).reshape({s, b, nq * d});
}

}  // namespace llama2
