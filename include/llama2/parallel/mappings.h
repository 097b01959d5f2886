// Owns the five differentiable TP/SP communication functions (Megatron's mappings) — the only way
// the model talks to other ranks. Sequence-parallel tensors are split along dim 0, the sequence of [s, b, h].
#pragma once
#include <ATen/core/Tensor.h>

namespace llama2 {

class Communicator;

// fwd: identity; bwd: all-reduce over TP. Input of a column-parallel layer without SP.
at::Tensor copy_to_tp(const at::Tensor& x, const Communicator& tp);
// fwd: all-reduce over TP; bwd: identity. Output of a row-parallel layer without SP.
at::Tensor reduce_from_tp(const at::Tensor& x, const Communicator& tp);
// fwd: keep this rank's slice of dim 0; bwd: all-gather along dim 0.
at::Tensor scatter_to_sp(const at::Tensor& x, const Communicator& tp);
// fwd: all-gather along dim 0; bwd: reduce-scatter along dim 0. Input of a column-parallel layer with SP.
at::Tensor gather_from_sp(const at::Tensor& x, const Communicator& tp);
// fwd: reduce-scatter along dim 0; bwd: all-gather along dim 0. Output of a row-parallel layer with SP.
at::Tensor reduce_scatter_to_sp(const at::Tensor& x, const Communicator& tp);

}  // namespace llama2
