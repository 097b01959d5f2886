// SwiGLU fused: y = silu(g)·u; dg = dy·u·σ(g)·(1 + g·(1 − σ(g))), du = dy·silu(g). One vectorised pass each way.
#include "llama2/model/swiglu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/kernels/dtype_conversion.h"
#include "llama2/kernels/vector_math.h"

namespace llama2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

template <typename T>
LLAMA2_INLINE Acc<T> sigmoid(Acc<T> x) {
  return static_cast<Acc<T>>(1) / (static_cast<Acc<T>>(1) + vector_exp(-x));
}

// Rows [begin, end) of gate_up [rows, 2f] → y [rows, f]. Compiled per ISA for each storage type.
template <typename T>
LLAMA2_CPU_CLONES void forward_rows(const T* gate_up, T* y, int64_t f, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const T *g = gate_up + r * 2 * f, *u = g + f;
    T* yr = y + r * f;
#pragma omp simd
    for (int64_t i = 0; i < f; ++i) {
      const Acc<T> gi = to_acc(g[i]);
      yr[i] = from_acc<T>(gi * sigmoid<T>(gi) * to_acc(u[i]));
    }
  }
}

// Rows [begin, end) of gate_up [rows, 2f] and dy [rows, f] → d [rows, 2f]
template <typename T>
LLAMA2_CPU_CLONES void backward_rows(const T* gate_up, const T* dy, T* d, int64_t f, int64_t begin,
                                     int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const T *g = gate_up + r * 2 * f, *u = g + f, *dyr = dy + r * f;
    T *dg = d + r * 2 * f, *du = dg + f;
#pragma omp simd
    for (int64_t i = 0; i < f; ++i) {
      const Acc<T> gi = to_acc(g[i]), ui = to_acc(u[i]), dyi = to_acc(dyr[i]);
      const Acc<T> s = sigmoid<T>(gi);
      dg[i] = from_acc<T>(dyi * ui * s * (1 + gi * (1 - s)));
      du[i] = from_acc<T>(dyi * gi * s);
    }
  }
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
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) { forward_rows(in, out, f, begin, end); });
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
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) { backward_rows(in, dout, din, f, begin, end); });
    });
    return {d};
  }
};

}  // namespace

at::Tensor swiglu(const at::Tensor& gate_up) { return SwiGluFunction::apply(gate_up.contiguous()); }

}  // namespace llama2
