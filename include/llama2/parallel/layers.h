// Owns the tensor-parallel layers built from the mappings: column-/row-parallel linear,
// vocab-parallel embedding and vocab-parallel cross-entropy. Activations are [s, b, h] (s/tp with SP).
#pragma once
#include <ATen/core/Tensor.h>

namespace llama2 {

class Communicator;

struct TensorParallel {
  const Communicator* comm;   // the TP group
  bool sequence_parallel;     // activations between blocks split along s
};

// x [s(/tp), b, in] → [s, b, out/tp]; w [out/tp, in] (this rank's rows).
at::Tensor column_parallel_linear(const at::Tensor& x, const at::Tensor& w, const TensorParallel& tp);

// x [s, b, in/tp] → [s(/tp), b, out]; w [out, in/tp] (this rank's columns).
at::Tensor row_parallel_linear(const at::Tensor& x, const at::Tensor& w, const TensorParallel& tp);

// ids [s, b] → [s(/tp), b, h]; w [Vp/tp, h] holds vocab rows [rank·Vp/tp, (rank+1)·Vp/tp).
at::Tensor vocab_parallel_embedding(const at::Tensor& ids, const at::Tensor& w, const TensorParallel& tp);

// The input every column-parallel consumer needs: x [s(/tp), b, h] → [s, b, h] (all-gathered over SP; the
// TP copy whose backward all-reduces without SP).
at::Tensor tensor_parallel_input(const at::Tensor& x, const TensorParallel& tp);

// Vocabulary columns per tile of the fused loss below: a chunk's logits are made, folded into the softmax
// statistics and turned into gradients a [rows, kCrossEntropyVocabBlock] tile at a time, while the tile is in cache.
inline constexpr int64_t kCrossEntropyVocabBlock = 256;

// Tokens per chunk of the fused loss below for `vocab_cols` vocabulary columns on this rank and inputs of
// `element_bytes`: a chunk's exponentials, kept in the inputs' type, are at most 32 MiB (at least one row).
int64_t cross_entropy_chunk_rows(int64_t vocab_cols, int64_t element_bytes);

// The lm_head and the loss fused: x [s(/tp), b, h] (final norm output), w [Vp/tp, h] (this rank's vocab rows,
// rows ≥ vocab_size ignored), targets [s, b] → mean loss over the s·b tokens (fp32; fp64 for fp64).
// Logits exist only `chunk_rows` tokens at a time (0: a ≤ 32 MiB chunk) and a tile of kCrossEntropyVocabBlock
// columns at a time: each tile is folded into online softmax statistics while in cache and kept as its
// exponentials, in the inputs' type; after the statistics are reduced over TP (max, sum of exponentials, target
// logit; the full vocabulary is never gathered), each tile's gradient is those exponentials rescaled, and feeds dw
// and dx while in cache. dx and dw are computed in the forward (nothing recomputed), scaled for `loss_grad`, the
// gradient the loss's backward will bring (the trainer's 1/grad_accum_usteps); where w has a gradient buffer of
// fp32 (fp64 for fp64), dw is added to it in the forward, and backward fails unless it brings loss_grad.
at::Tensor vocab_parallel_cross_entropy(const at::Tensor& x, const at::Tensor& w, const at::Tensor& targets,
                                        int64_t vocab_size, const TensorParallel& tp, int64_t chunk_rows = 0,
                                        double loss_grad = 1);

}  // namespace llama2
