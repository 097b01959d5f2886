// RMSNorm as one fused forward and one fused backward pass over contiguous rows (HF's dtype handling:
// statistics in fp32, or fp64 for fp64 inputs; the normalized row rounded to x's dtype before the weight).
#include "llama2/model/rmsnorm.h"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/kernels/dtype_conversion.h"
#include "llama2/kernels/workers.h"
#include "llama2/kernels/vector_math.h"
#include "llama2/util/phases.h"

namespace llama2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Rows [begin, end): y[r] = w · round_T(x[r] · inv_rms[r]); inv_rms[r] = 1 / sqrt(mean(x[r]²) + eps).
// Compiled per ISA for each storage type.
template <typename T>
LLAMA2_CPU_CLONES void forward_rows(const T* x, const T* w, T* y, Acc<T>* inv_rms, int64_t h, Acc<T> eps,
                                    int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const T* xr = x + r * h;
    Acc<T> sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < h; ++i) sum += to_acc(xr[i]) * to_acc(xr[i]);
    const Acc<T> inv = static_cast<Acc<T>>(1) / std::sqrt(sum / h + eps);
    inv_rms[r] = inv;
    T* yr = y + r * h;
#pragma omp simd
    for (int64_t i = 0; i < h; ++i) yr[i] = from_acc<T>(to_acc(w[i]) * to_acc(from_acc<T>(to_acc(xr[i]) * inv)));
  }
}

// Rows [begin, end): dx[r] = inv·(g − n·mean(g·n)) with n = x·inv, g = dy·w; dw += Σ_r dy[r]·n[r].
template <typename T>
LLAMA2_CPU_CLONES void backward_rows(const T* x, const T* w, const T* dy, const Acc<T>* inv_rms, T* dx, Acc<T>* dw,
                                     int64_t h, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const T *xr = x + r * h, *dyr = dy + r * h;
    const Acc<T> inv = inv_rms[r];
    Acc<T> dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < h; ++i) {
      const Acc<T> n = to_acc(xr[i]) * inv, g = to_acc(dyr[i]) * to_acc(w[i]);
      dot += g * n;
      dw[i] += to_acc(dyr[i]) * n;
    }
    const Acc<T> mean = dot / h;
    T* dxr = dx + r * h;
#pragma omp simd
    for (int64_t i = 0; i < h; ++i) {
      const Acc<T> n = to_acc(xr[i]) * inv, g = to_acc(dyr[i]) * to_acc(w[i]);
      dxr[i] = from_acc<T>(inv * (g - n * mean));
    }
  }
}

at::ScalarType acc_type(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, double eps) {
    const int64_t h = x.size(-1), rows = x.numel() / h;
    at::Tensor y = at::empty_like(x);
    at::Tensor inv_rms = at::empty({rows}, x.options().dtype(acc_type(x)));
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "rms_norm_forward", [&] {
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
        forward_rows<scalar_t>(x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                               inv_rms.data_ptr<Acc<scalar_t>>(), h, static_cast<Acc<scalar_t>>(eps), begin, end);
      });
    });
    ctx->save_for_backward({x, w, inv_rms});
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &inv_rms = saved[2];
    const at::Tensor dy = grads[0].contiguous();
    const int64_t h = x.size(-1), rows = x.numel() / h;
    at::Tensor dx = at::empty_like(x);
    // dw: one partial sum per worker over its own contiguous rows, added in worker order (reproducible for a
    // given thread count).
    const int64_t workers = workers_for((rows + 15) / 16);
    at::Tensor dw;
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "rms_norm_backward", [&] {
      const WorkerBuffers<Acc<scalar_t>> dw_parts(workers, h, x.options());  // [workers, h]
      dw_parts.slices().zero_();
      for_each_task(workers, workers, [&](int64_t t, int64_t worker) {
        backward_rows<scalar_t>(x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), dy.data_ptr<scalar_t>(),
                                inv_rms.data_ptr<Acc<scalar_t>>(), dx.data_ptr<scalar_t>(), dw_parts[worker], h,
                                rows * t / workers, rows * (t + 1) / workers);
      });
      dw = dw_parts.slices().sum(0);
    });
    return {dx, dw.to(w.scalar_type()), at::Tensor()};
  }
};

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  return RmsNormFunction::apply(x.contiguous(), w.contiguous(), eps);
}

}  // namespace llama2
