// Owns core attention: softmax(q·kᵀ/√d + causal mask)·v with GQA, flash-attention style (tiles, online
// softmax, scores recomputed in backward). Does not own the projections (llama.cpp) or rotary (rotary.h).
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace llama2 {

// Query rows and keys per tile of core attention: a tile's scores [rows, keys] live in a per-thread buffer
// (256 KiB in fp32), and query rows [r0, r0 + rows) visit key tiles up to their last row only.
inline constexpr int64_t kAttentionBlockRows = 128;
inline constexpr int64_t kAttentionBlockKeys = 512;

// The causal mask's value, added to the scores of keys after a query's position (the recipe's constant
// triangular mask: 0 on and below the diagonal, -10000 above; exp of it is 0 in fp32 and bf16).
inline constexpr float kMaskedScore = -10000.0f;

// q [s, b, nq, d], k and v [s, b, nkv, d] with nq a multiple of nkv (query head j uses kv head
// j / (nq / nkv), as HF's repeat_kv) → [s, b, nq·d]. Inputs stored head-major ([b, n, s, d], as rotary_qkv
// makes them) are read in place, and the output is written in place: no layout copies. Causal: query i sees
// keys j ≤ i, later ones get probability 0 (exp of kMaskedScore). Each query tile runs an online softmax over its key tiles (scale,
// mask and softmax fused, vectorised; tiles past the diagonal skipped), so the probabilities [b, nq, s, s] never exist in memory. Backward keeps only q, k, v, the output
// and each row's log-sum-exp, and recomputes each tile's probabilities from them: core attention is always
// selectively checkpointed, at the cost of one more q·kᵀ.
at::Tensor core_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// The same attention unfused, in fp64, through libtorch's autograd: the full scores [b, nq, s, s] with the mask
// added, softmax, times v; the result in q's dtype. The reference that training-level tests compare core_attention
// with (test hook reference_attention), on a task that needs attention.
at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// Attention of n new positions against a KV cache, for generation (no autograd). q [n, b, nq, d], k and v
// [n, b, nkv, d] at positions past..past+n-1 are appended to k_cache and v_cache [b, nkv, capacity, d] at
// [past, past + n); query i sees cached keys j ≤ past + i (the rest get kMaskedScore, as in training) → [n, b, nq·d].
// The cache is read in place; scores and softmax in fp32 (fp64 for fp64), the probabilities in the inputs' type
// for the values' GEMM.
at::Tensor cached_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor& k_cache,
                            at::Tensor& v_cache, int64_t past);

}  // namespace llama2
