// Column-/row-parallel linear and vocab-parallel embedding, composed from the TP/SP mappings.
#include "llama2/parallel/layers.h"

#include <ATen/ATen.h>

#include "llama2/dist/communicator.h"
#include "llama2/kernels/linear.h"
#include "llama2/parallel/mappings.h"

namespace llama2 {

at::Tensor tensor_parallel_input(const at::Tensor& x, const TensorParallel& tp) {
  return tp.sequence_parallel ? gather_from_sp(x, *tp.comm) : copy_to_tp(x, *tp.comm);
}

at::Tensor column_parallel_linear(const at::Tensor& x, const at::Tensor& w, const TensorParallel& tp) {
  return llama2::linear(tensor_parallel_input(x, tp), w);
}

at::Tensor row_parallel_linear(const at::Tensor& x, const at::Tensor& w, const TensorParallel& tp) {
  const at::Tensor partial = llama2::linear(x, w);
  return tp.sequence_parallel ? reduce_scatter_to_sp(partial, *tp.comm) : reduce_from_tp(partial, *tp.comm);
}

at::Tensor vocab_parallel_embedding(const at::Tensor& ids, const at::Tensor& w, const TensorParallel& tp) {
  const int64_t rows = w.size(0);
  const int64_t start = tp.comm->rank() * rows;
  const at::Tensor local = ids - start;                                   // [s, b]
  const at::Tensor inside = (local >= 0).logical_and(local < rows);       // [s, b]
  const at::Tensor index = local.clamp(0, rows - 1).reshape({-1});
  at::Tensor out = w.index_select(0, index).view({ids.size(0), ids.size(1), w.size(1)});  // [s, b, h]
  if (tp.comm->size() > 1) out = out * inside.unsqueeze(-1).to(out.scalar_type());
  return tp.sequence_parallel ? reduce_scatter_to_sp(out, *tp.comm) : reduce_from_tp(out, *tp.comm);
}

}  // namespace llama2
