// The linear layer's autograd function on oneDNN GEMMs.
#include "llama2/kernels/linear.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/kernels/matmul.h"
#include "llama2/util/phases.h"

namespace llama2 {

at::Tensor gradient_accumulator(const at::Tensor& w) {
  const at::Tensor& grad = w.grad();
  const bool direct = grad.defined() && grad.is_contiguous() &&
                      (grad.scalar_type() == w.scalar_type() || grad.scalar_type() == at::kFloat);
  return direct ? grad : at::Tensor();
}

namespace {

class LinearFunction : public torch::autograd::Function<LinearFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w) {
    ScopedPhase phase(Phase::Gemm);
    ctx->save_for_backward({x, w});
    // dW goes straight into the weight's gradient buffer when it has one: no temporary, no accumulation pass.
    ctx->saved_data["dw"] = w.scalar_type() == at::kDouble ? at::Tensor() : gradient_accumulator(w);
    const at::Tensor x2 = x.reshape({-1, x.size(-1)});  // [m, in]
    auto out_sizes = x.sizes().vec();
    out_sizes.back() = w.size(0);
    return llama2::matmul(x2, false, w, true, MatrixKind::Weight).view(out_sizes);  // [..., out]
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    ScopedPhase phase(Phase::Gemm);
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w = saved[1];                                           // [out, in]
    const at::Tensor dy = grads[0].contiguous().view({-1, w.size(0)});       // [m, out]
    const at::Tensor dx = llama2::matmul(dy, false, w, false, MatrixKind::Weight).view(x.sizes());  // [m, in]
    const at::Tensor x2 = x.reshape({-1, x.size(-1)});
    at::Tensor dw_buffer = ctx->saved_data["dw"].toTensor();
    if (dw_buffer.defined()) {
      matmul_into(dy, true, x2, false, dw_buffer, true);  // .grad += dy^T @ x
      return {dx, at::Tensor()};
    }
    return {dx, llama2::matmul(dy, true, x2, false)};  // [out, in]
  }
};

}  // namespace

at::Tensor linear(const at::Tensor& x, const at::Tensor& w) {
  return LinearFunction::apply(x.contiguous(), w);
}

}  // namespace llama2
