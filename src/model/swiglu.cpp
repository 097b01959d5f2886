// SwiGLU fused: y = silu(g)·u; dg = dy·u·σ(g)·(1 + g·(1 − σ(g))), du = dy·silu(g).
#include "llama2/swiglu.h"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/accumulate.h"

namespace llama2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

template <typename T>
Acc<T> sigmoid(Acc<T> x) {
  return static_cast<Acc<T>>(1) / (static_cast<Acc<T>>(1) + std::exp(-x));
}

class SwiGluFunction : public torch::autograd::Function<SwiGluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate_up) {
    const int64_t f = gate_up.size(-1) / 2, rows = gate_up.numel() / (2 * f);
    auto sizes = gate_up.sizes().vec();
    sizes.back() = f;
    at::Tensor y = at::empty(sizes, gate_up.options());
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, gate_up.scalar_type(), "swiglu_forward", [&] {
      const scalar_t* in = gate_up.data_ptr<scalar_t>();
      scalar_t* out = y.data_ptr<scalar_t>();
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r)
          for (int64_t i = 0; i < f; ++i) {
            const Acc<scalar_t> g = in[r * 2 * f + i], u = in[r * 2 * f + f + i];
            out[r * f + i] = static_cast<scalar_t>(g * sigmoid<scalar_t>(g) * u);
          }
      });
    });
    ctx->save_for_backward({gate_up});
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const at::Tensor gate_up = ctx->get_saved_variables()[0];
    const at::Tensor dy = grads[0].contiguous();
    const int64_t f = gate_up.size(-1) / 2, rows = gate_up.numel() / (2 * f);
    at::Tensor d = at::empty_like(gate_up);
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, gate_up.scalar_type(), "swiglu_backward", [&] {
      const scalar_t *in = gate_up.data_ptr<scalar_t>(), *dout = dy.data_ptr<scalar_t>();
      scalar_t* din = d.data_ptr<scalar_t>();
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r)
          for (int64_t i = 0; i < f; ++i) {
            const Acc<scalar_t> g = in[r * 2 * f + i], u = in[r * 2 * f + f + i], dyv = dout[r * f + i];
            const Acc<scalar_t> s = sigmoid<scalar_t>(g);
            din[r * 2 * f + i] = static_cast<scalar_t>(dyv * u * s * (1 + g * (1 - s)));
            din[r * 2 * f + f + i] = static_cast<scalar_t>(dyv * g * s);
          }
      });
    });
    return {d};
  }
};

}  // namespace

at::Tensor swiglu(const at::Tensor& gate_up) { return SwiGluFunction::apply(gate_up.contiguous()); }

}  // namespace llama2
