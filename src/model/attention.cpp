// Core attention on oneDNN batched matmuls, GQA without repeating k/v, optional recompute of the probabilities.
#include "llama2/model/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/kernels/accumulate.h"
#include "llama2/kernels/matmul.h"
#include "llama2/kernels/vector_math.h"
#include "llama2/util/phases.h"

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
  int64_t head, row, r0, rows, keys;  // query head within its kv group; q3 row of the block's first query;
                                      // its position, row count and key count
};

std::vector<Block> causal_blocks(int64_t s, int64_t rep) {
  std::vector<Block> blocks;
  for (int64_t head = 0; head < rep; ++head)
    for (int64_t r0 = 0; r0 < s; r0 += kAttentionBlockRows) {
      const int64_t rows = std::min(kAttentionBlockRows, s - r0);
      blocks.push_back({head, head * s + r0, r0, rows, r0 + rows});
    }
  return blocks;
}

// The rows of `blk` in x [s, b, nq·d] as [B = b·nkv, rows, d]: batch (batch, kv head) is rep·d apart since
// nq = nkv·rep, positions are b·nq·d apart. Core attention writes its output and reads its gradient here.
at::Tensor block_rows(const at::Tensor& x, const Block& blk, int64_t rep, int64_t d) {
  const int64_t position_stride = x.size(1) * x.size(2);
  return x.as_strided({position_stride / (rep * d), blk.rows, d}, {rep * d, position_stride, 1},
                      x.storage_offset() + blk.head * d + blk.r0 * position_stride);
}

// Rows [begin, end) of z [·, keys] in place: z ← softmax(z·scale + mask), row r taking mask row r mod `rows`
// (mask rows mask_ld apart). In Acc<T>; e holds one row of exponentials.
template <typename T>
LLAMA2_INLINE void softmax_rows(T* z, const float* mask, int64_t mask_ld, int64_t rows, int64_t keys, Acc<T> scale,
                                int64_t begin, int64_t end) {
  std::vector<Acc<T>> row(static_cast<size_t>(keys));
  Acc<T>* e = row.data();
  for (int64_t r = begin; r < end; ++r) {
    T* zr = z + r * keys;
    const float* mr = mask + (r % rows) * mask_ld;
    for (int64_t i = 0; i < keys; ++i) e[i] = static_cast<Acc<T>>(zr[i]) * scale + mr[i];
    Acc<T> max = e[0], sum = 0;
#pragma omp simd reduction(max : max)
    for (int64_t i = 1; i < keys; ++i) max = max > e[i] ? max : e[i];
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < keys; ++i) {
      e[i] = vector_exp(e[i] - max);
      sum += e[i];
    }
    const Acc<T> inv = 1 / sum;
    for (int64_t i = 0; i < keys; ++i) zr[i] = static_cast<T>(e[i] * inv);
  }
}

// Rows [begin, end) of p, dp [·, keys]: dp ← scale·p·(dp − Σ p·dp), the gradient of the softmax's input.
template <typename T>
LLAMA2_INLINE void softmax_backward_rows(const T* p, T* dp, int64_t keys, Acc<T> scale, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const T* pr = p + r * keys;
    T* dr = dp + r * keys;
    Acc<T> dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < keys; ++i) dot += static_cast<Acc<T>>(pr[i]) * static_cast<Acc<T>>(dr[i]);
    for (int64_t i = 0; i < keys; ++i)
      dr[i] = static_cast<T>(scale * static_cast<Acc<T>>(pr[i]) * (static_cast<Acc<T>>(dr[i]) - dot));
  }
}

// fp32, the hot path: compiled per ISA (overload resolution prefers these to the templates).
LLAMA2_CPU_CLONES void softmax_rows(float* z, const float* mask, int64_t mask_ld, int64_t rows, int64_t keys,
                                    float scale, int64_t begin, int64_t end) {
  softmax_rows<float>(z, mask, mask_ld, rows, keys, scale, begin, end);
}
LLAMA2_CPU_CLONES void softmax_backward_rows(const float* p, float* dp, int64_t keys, float scale, int64_t begin,
                                             int64_t end) {
  softmax_backward_rows<float>(p, dp, keys, scale, begin, end);
}

// softmax(q·kᵀ·scale + mask) of one block → [B, rows, keys]
at::Tensor probabilities(const at::Tensor& q3, const at::Tensor& k3, const at::Tensor& mask, double scale,
                         const Block& blk) {
  at::Tensor p = llama2::matmul(q3.narrow(1, blk.row, blk.rows), false, k3.narrow(1, 0, blk.keys), true);
  const float* m = mask.data_ptr<float>() + blk.r0 * mask.stride(0);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, p.scalar_type(), "attention_softmax", [&] {
    scalar_t* z = p.data_ptr<scalar_t>();
    at::parallel_for(0, p.size(0) * blk.rows, 16, [&](int64_t begin, int64_t end) {
      softmax_rows(z, m, mask.stride(0), blk.rows, blk.keys, static_cast<Acc<scalar_t>>(scale), begin, end);
    });
  });
  return p;
}

// d_p [B, rows, keys] in place → the gradient of the scores q·kᵀ (the softmax's and the scale's backward).
void scores_gradient(const at::Tensor& p, at::Tensor& d_p, double scale) {
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, p.scalar_type(), "attention_softmax_backward", [&] {
    const scalar_t* pp = p.data_ptr<scalar_t>();
    scalar_t* dp = d_p.data_ptr<scalar_t>();
    at::parallel_for(0, p.size(0) * p.size(1), 16, [&](int64_t begin, int64_t end) {
      softmax_backward_rows(pp, dp, p.size(2), static_cast<Acc<scalar_t>>(scale), begin, end);
    });
  });
}

class CoreAttention : public torch::autograd::Function<CoreAttention> {
 public:
  // q3 [B, rep·s, d], k3, v3 [B, s, d] with B = b·nkv → [s, b, nq·d]
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q3, const at::Tensor& k3, const at::Tensor& v3,
                            const at::Tensor& mask, int64_t b, bool recompute) {
    ScopedPhase phase(Phase::Attention);
    const int64_t s = k3.size(1), d = q3.size(2), rep = q3.size(1) / s;
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    at::Tensor out = at::empty({s, b, q3.size(0) / b * rep * d}, q3.options());
    std::vector<at::Tensor> saved{q3, k3, v3, mask};
    for (const Block& blk : causal_blocks(s, rep)) {
      const at::Tensor p = probabilities(q3, k3, mask, scale, blk);      // [B, rows, keys]
      at::Tensor out_rows = block_rows(out, blk, rep, d);
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
    const int64_t s = k3.size(1), d = q3.size(2), rep = q3.size(1) / s;
    const at::Tensor d_out = grads[0].contiguous();                      // [s, b, nq·d]
    // d_k and d_v sum over blocks: in fp32 for bf16 inputs.
    const auto acc = q3.scalar_type() == at::kBFloat16 ? at::kFloat : q3.scalar_type();
    at::Tensor d_q = at::empty_like(q3), d_k = at::zeros(k3.sizes(), k3.options().dtype(acc));
    at::Tensor d_v = at::zeros(v3.sizes(), v3.options().dtype(acc));
    const std::vector<Block> blocks = causal_blocks(s, rep);
    for (size_t i = 0; i < blocks.size(); ++i) {
      const Block& blk = blocks[i];
      const at::Tensor p = saved.size() > 4 ? saved[4 + i] : probabilities(q3, k3, mask, scale, blk);
      const at::Tensor d_out_rows = block_rows(d_out, blk, rep, d);      // [B, rows, d]
      const at::Tensor q_rows = q3.narrow(1, blk.row, blk.rows);
      at::Tensor d_v_keys = d_v.narrow(1, 0, blk.keys), d_k_keys = d_k.narrow(1, 0, blk.keys);
      at::Tensor d_q_rows = d_q.narrow(1, blk.row, blk.rows);
      matmul_into(p, true, d_out_rows, false, d_v_keys, true);                                    // d_v += pᵀ·d_out
      at::Tensor d_scores = llama2::matmul(d_out_rows, false, v3.narrow(1, 0, blk.keys), true);  // d_p [B, rows, keys]
      scores_gradient(p, d_scores, scale);
      matmul_into(d_scores, false, k3.narrow(1, 0, blk.keys), false, d_q_rows, false);  // d_q = d_s·k
      matmul_into(d_scores, true, q_rows, false, d_k_keys, true);                        // d_k += d_sᵀ·q
    }
    return {d_q, d_k.to(k3.scalar_type()), d_v.to(v3.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor()};
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
  ScopedPhase phase(Phase::Attention);  // the layout copies around the kernel too (none for rotary_qkv's)
  // [s, b, n, d] → [b, n, s, d]; query heads of one kv head are adjacent, so they fold into rows.
  const at::Tensor q3 = q.permute({1, 2, 0, 3}).contiguous().view({b * nkv, rep * s, d});
  const at::Tensor k3 = k.permute({1, 2, 0, 3}).contiguous().view({b * nkv, s, d});
  const at::Tensor v3 = v.permute({1, 2, 0, 3}).contiguous().view({b * nkv, s, d});
  return CoreAttention::apply(q3, k3, v3, mask, b, recompute);  // [s, b, nq·d]
}

}  // namespace llama2
