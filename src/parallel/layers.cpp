// Column-/row-parallel linear and vocab-parallel embedding, composed from the TP/SP mappings.
#include "llama2/parallel/layers.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/dist/communicator.h"
#include "llama2/kernels/linear.h"
#include "llama2/parallel/mappings.h"

namespace llama2 {
namespace {

// w's rows at `index` [n] → [n, h]. Backward adds dy's rows at `index` into the optimizer's gradient buffer of w
// when it has one (gradient_accumulator: fp32 for a bf16 w), touching only the rows looked up; autograd's own
// way builds a dense [rows, h] gradient, then converts and adds all of it (~45 ms a step for 32000 × 512 bf16).
class EmbeddingLookup : public torch::autograd::Function<EmbeddingLookup> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& w, const at::Tensor& index) {
    ctx->save_for_backward({index});
    ctx->saved_data["rows"] = w.size(0);
    ctx->saved_data["w_grad"] = gradient_accumulator(w);
    return w.index_select(0, index);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const at::Tensor index = ctx->get_saved_variables()[0];
    const at::Tensor& dy = grads[0];  // [n, h]
    at::Tensor w_grad = ctx->saved_data["w_grad"].toTensor();
    if (w_grad.defined()) {
      w_grad.index_add_(0, index, dy.to(w_grad.scalar_type()));
      return {at::Tensor(), at::Tensor()};
    }
    return {at::zeros({ctx->saved_data["rows"].toInt(), dy.size(1)}, dy.options()).index_add_(0, index, dy),
            at::Tensor()};
  }
};

}  // namespace

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
  at::Tensor out = EmbeddingLookup::apply(w, index).view({ids.size(0), ids.size(1), w.size(1)});  // [s, b, h]
  if (tp.comm->size() > 1) out = out * inside.unsqueeze(-1).to(out.scalar_type());
  return tp.sequence_parallel ? reduce_scatter_to_sp(out, *tp.comm) : reduce_from_tp(out, *tp.comm);
}

}  // namespace llama2
