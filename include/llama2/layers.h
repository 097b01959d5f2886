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

// logits [s, b, Vp/tp] (this rank's vocab columns, padding columns ≥ vocab_size ignored), targets [s, b]
// → per-token loss [s, b] in fp32 (fp64 for fp64 logits). The max, the target logit and the sum of exponentials are reduced over
// TP; the full vocabulary is never gathered.
at::Tensor vocab_parallel_cross_entropy(const at::Tensor& logits, const at::Tensor& targets, int64_t vocab_size,
                                        const TensorParallel& tp);

}  // namespace llama2
