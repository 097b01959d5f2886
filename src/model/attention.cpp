// Core attention on oneDNN batched matmuls, GQA without repeating k/v, optional recompute of the probabilities.
#include "llama2/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

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
// Causal blocks: query rows [r0, r0 + rows) of a head see keys [0, r0 + rows) only; the rest of their row
// is masked (exp(-10000) is 0 in fp32 and bf16), so it is never computed: about half the work of full
// rows at s = 512.

struct Block {
  int64_t row, r0, rows, keys;  // q3 row of the block's first query; its position, row count and key count
};

std::vector<Block> causal_blocks(int64_t s, int64_t rep) {
  std::vector<Block> blocks;
  for (int64_t head = 0; head < rep; ++head)
    for (int64_t r0 = 0; r0 < s; r0 += kAttentionBlockRows) {
      const int64_t rows = std::min(kAttentionBlockRows, s - r0);
      blocks.push_back({head * s + r0, r0, rows, r0 + rows});
    }
  return blocks;
}

// softmax(q·kᵀ·scale + mask) of one block → [B, rows, keys]
at::Tensor probabilities(const at::Tensor& q3, const at::Tensor& k3, const at::Tensor& mask, double scale,
                         const Block& blk) {
  at::Tensor scores = llama2::matmul(q3.narrow(1, blk.row, blk.rows), false, k3.narrow(1, 0, blk.keys), true);
  scores.mul_(scale).add_(mask.narrow(0, blk.r0, blk.rows).narrow(1, 0, blk.keys).to(scores.scalar_type()));
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
    const int64_t s = k3.size(1);
    at::Tensor out = at::empty_like(q3);                                  // [B, rep·s, d]
    std::vector<at::Tensor> saved{q3, k3, v3, mask};
    for (const Block& blk : causal_blocks(s, q3.size(1) / s)) {
      const at::Tensor p = probabilities(q3, k3, mask, scale, blk);      // [B, rows, keys]
      at::Tensor out_rows = out.narrow(1, blk.row, blk.rows);
      matmul_into(p, false, v3.narrow(1, 0, blk.keys), false, out_rows, false);
      if (!recompute) saved.push_back(p);
    }
    ctx->save_for_backward(saved);
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    ScopedPhase phase(Phase::Attention);
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q3 = saved[0], &k3 = saved[1], &v3 = saved[2], &mask = saved[3];
    const double scale = ctx->saved_data["scale"].toDouble();
    const at::Tensor d_out = grads[0].contiguous();                      // [B, rep·s, d]
    // d_k and d_v sum over blocks: in fp32 for bf16 inputs.
    const auto acc = q3.scalar_type() == at::kBFloat16 ? at::kFloat : q3.scalar_type();
    at::Tensor d_q = at::empty_like(q3), d_k = at::zeros(k3.sizes(), k3.options().dtype(acc));
    at::Tensor d_v = at::zeros(v3.sizes(), v3.options().dtype(acc));
    const std::vector<Block> blocks = causal_blocks(k3.size(1), q3.size(1) / k3.size(1));
    for (size_t i = 0; i < blocks.size(); ++i) {
      const Block& blk = blocks[i];
      const at::Tensor p = saved.size() > 4 ? saved[4 + i] : probabilities(q3, k3, mask, scale, blk);
      const at::Tensor d_out_rows = d_out.narrow(1, blk.row, blk.rows);   // [B, rows, d]
      const at::Tensor q_rows = q3.narrow(1, blk.row, blk.rows);
      at::Tensor d_v_keys = d_v.narrow(1, 0, blk.keys), d_k_keys = d_k.narrow(1, 0, blk.keys);
      at::Tensor d_q_rows = d_q.narrow(1, blk.row, blk.rows);
      matmul_into(p, true, d_out_rows, false, d_v_keys, true);                             // d_v += pᵀ·d_out
      const at::Tensor d_p = llama2::matmul(d_out_rows, false, v3.narrow(1, 0, blk.keys), true);  // [B, rows, keys]
      at::Tensor d_scores = at::_softmax_backward_data(d_p, p, -1, p.scalar_type());
      d_scores.mul_(scale);
      matmul_into(d_scores, false, k3.narrow(1, 0, blk.keys), false, d_q_rows, false);    // d_q = d_s·k
      matmul_into(d_scores, true, q_rows, false, d_k_keys, true);                          // d_k += d_sᵀ·q
    }
    return {d_q, d_k.to(k3.scalar_type()), d_v.to(v3.scalar_type()), at::Tensor(), at::Tensor()};
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
