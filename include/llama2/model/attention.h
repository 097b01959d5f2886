// Owns core attention: softmax(q·kᵀ/√d + causal mask)·v with GQA, and its selective recompute.
// Does not own the projections (llama.cpp) or rotary embedding (rotary.h).
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace llama2 {

// Query rows per causal block of core attention: a block sees only the keys up to its last row.
inline constexpr int64_t kAttentionBlockRows = 128;

// The constant causal mask [s, s]: 0 on and below the diagonal, -10000 above (the recipe's value).
// Built once per sequence length by the model and reused every step.
at::Tensor causal_mask(int64_t seq_len);

// q [s, b, nq, d], k and v [s, b, nkv, d] with nq a multiple of nkv (query head j uses kv head
// j / (nq / nkv), as HF's repeat_kv) → [s, b, nq·d]. Inputs stored head-major ([b, n, s, d], as rotary_qkv
// makes them) are read in place, and the output is written in place: no layout copies. Computed in causal
// blocks of query rows that skip the fully masked keys; softmax, mask and scale fused, vectorised. With
// `recompute`, the attention probabilities (about half of [b, nq, s, s]) are not kept for backward but
// recomputed from q and k (selective checkpointing).
at::Tensor core_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                          bool recompute);

}  // namespace llama2
