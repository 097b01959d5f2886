// Fused, chunked vocab-parallel cross-entropy: the lm_head GEMM, softmax and their gradient a chunk of
// tokens at a time; softmax statistics reduced over TP; neither full logits nor the full vocabulary exist.
#include <algorithm>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/dist/communicator.h"
#include "llama2/kernels/linear.h"
#include "llama2/kernels/matmul.h"
#include "llama2/kernels/vector_math.h"
#include "llama2/parallel/layers.h"
#include "llama2/util/phases.h"

namespace llama2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// The loss's passes over one chunk of logits z [n, ld] (acc dtype), valid columns [0, valid) (the rest are vocab
// padding), rows [begin, end); t holds the rows' targets relative to this rank's first column.

// max[r] = max_j z[r, j]
template <typename T>
LLAMA2_INLINE void row_max(const T* z, int64_t ld, int64_t valid, T* max, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const T* zr = z + r * ld;
    T m = zr[0];
#pragma omp simd reduction(max : m)
    for (int64_t j = 1; j < valid; ++j) m = m > zr[j] ? m : zr[j];
    max[r] = m;
  }
}

// z[r, j] ← exp(z[r, j] − max[r]); sum[r] = Σ_j of those; target[r] = z[r, t_r] − max[r] (0 for a target
// outside this rank's columns)
template <typename T>
LLAMA2_INLINE void exp_rows(T* z, int64_t ld, int64_t valid, const T* max, const int64_t* t, T* sum, T* target,
                            int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    T* zr = z + r * ld;
    const T m = max[r];
    target[r] = t[r] >= 0 && t[r] < valid ? zr[t[r]] - m : 0;
    T total = 0;
#pragma omp simd reduction(+ : total)
    for (int64_t j = 0; j < valid; ++j) {
      zr[j] = vector_exp(zr[j] - m);
      total += zr[j];
    }
    sum[r] = total;
  }
}

// z[r, j] ← (z[r, j] / sum[r] − [j = t_r]) · scale: d(mean loss)/dz with scale = 1/tokens; padding columns 0
template <typename T>
LLAMA2_INLINE void gradient_rows(T* z, int64_t ld, int64_t valid, const T* sum, const int64_t* t, T scale,
                                 int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    T* zr = z + r * ld;
    const T factor = scale / sum[r];
    for (int64_t j = 0; j < valid; ++j) zr[j] *= factor;
    std::fill(zr + valid, zr + ld, T(0));
    if (t[r] >= 0 && t[r] < valid) zr[t[r]] -= scale;
  }
}

// fp32, the hot path: compiled per ISA (overload resolution prefers these to the templates).
LLAMA2_CPU_CLONES void row_max(const float* z, int64_t ld, int64_t valid, float* max, int64_t begin, int64_t end) {
  row_max<float>(z, ld, valid, max, begin, end);
}
LLAMA2_CPU_CLONES void exp_rows(float* z, int64_t ld, int64_t valid, const float* max, const int64_t* t, float* sum,
                                float* target, int64_t begin, int64_t end) {
  exp_rows<float>(z, ld, valid, max, t, sum, target, begin, end);
}
LLAMA2_CPU_CLONES void gradient_rows(float* z, int64_t ld, int64_t valid, const float* sum, const int64_t* t,
                                     float scale, int64_t begin, int64_t end) {
  gradient_rows<float>(z, ld, valid, sum, t, scale, begin, end);
}

class FusedCrossEntropy : public torch::autograd::Function<FusedCrossEntropy> {
 public:
  // x [T, h], w [Vl, h], targets [T] → mean loss (fp32; fp64 for fp64). With `grad`, dx and dw are computed
  // here, chunk by chunk, scaled by 1/T; backward only scales them by the incoming gradient.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& targets,
                            int64_t vocab_size, const Communicator* tp, int64_t chunk_rows, bool grad) {
    const int64_t tokens = x.size(0), cols = w.size(0);
    const int64_t start = tp->rank() * cols;
    const int64_t valid = std::max<int64_t>(0, std::min(cols, vocab_size - start));  // the rest is padding
    const at::ScalarType acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    const int64_t rows = chunk_rows > 0 ? chunk_rows : cross_entropy_chunk_rows(cols);
    at::Tensor logits = at::empty({std::min(rows, tokens), cols}, x.options().dtype(acc));  // reused per chunk
    at::Tensor losses = at::empty({tokens}, x.options().dtype(acc));
    at::Tensor max_rows = at::empty({std::min(rows, tokens)}, logits.options());          // reused per chunk
    at::Tensor stats_rows = at::empty({2 * std::min(rows, tokens)}, logits.options());    // reused per chunk
    at::Tensor dx = grad ? at::empty_like(x) : at::Tensor();
    at::Tensor dw = grad ? at::empty({cols, w.size(1)}, w.options().dtype(acc)) : at::Tensor();
    const at::Tensor local_targets = targets - start;

    for (int64_t r0 = 0; r0 < tokens; r0 += rows) {
      const int64_t n = std::min(rows, tokens - r0);
      const at::Tensor xc = x.narrow(0, r0, n);                            // [n, h]
      at::Tensor z = logits.narrow(0, 0, n);                               // [n, Vl]
      {
        ScopedPhase phase(Phase::Gemm);
        matmul_into(xc, false, w, true, z, false, MatrixKind::Weight);
      }
      const int64_t* t = local_targets.data_ptr<int64_t>() + r0;
      at::Tensor max = max_rows.narrow(0, 0, n);
      at::Tensor stats = stats_rows.narrow(0, 0, 2 * n).view({2, n});      // Σ exp(z - max), z[target] - max
      at::Tensor g;  // d(mean loss)/dz = (softmax - onehot(target)) / T; 0 in padding columns
      AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "vocab_parallel_cross_entropy", [&] {
        scalar_t *zp = z.data_ptr<scalar_t>(), *mp = max.data_ptr<scalar_t>(), *sum = stats.data_ptr<scalar_t>();
        {
          ScopedPhase phase(Phase::Loss);
          at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) { row_max(zp, cols, valid, mp, begin, end); });
        }
        tp->all_reduce(max, ReduceOp::Max);
        {
          ScopedPhase phase(Phase::Loss);
          at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
            exp_rows(zp, cols, valid, mp, t, sum, sum + n, begin, end);
          });
        }
        tp->all_reduce(stats);
        ScopedPhase phase(Phase::Loss);
        losses.narrow(0, r0, n).copy_(stats[0].log() - stats[1]);
        if (!grad) return;
        const auto scale = static_cast<scalar_t>(1.0 / static_cast<double>(tokens));
        at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
          gradient_rows(zp, cols, valid, sum, t, scale, begin, end);
        });
        g = z.scalar_type() == x.scalar_type() ? z : z.to(x.scalar_type());
      });
      if (!grad) continue;
      ScopedPhase phase(Phase::Gemm);
      at::Tensor dxc = dx.narrow(0, r0, n);
      matmul_into(g, false, w, false, dxc, false, MatrixKind::Weight);     // dx = g @ w     [n, h]
      matmul_into(g, true, xc, false, dw, r0 > 0);                         // dw += g^T @ x  [Vl, h]
    }
    if (grad) {
      ctx->save_for_backward({dx, dw});
      ctx->saved_data["w_dtype"] = static_cast<int64_t>(w.scalar_type());
      // A weight with a gradient buffer (the optimizer's flat buffer) gets dw added to it in backward directly.
      ctx->saved_data["w_grad"] = gradient_accumulator(w);
    }
    return losses.mean();
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    ScopedPhase phase(Phase::Loss);
    const auto saved = ctx->get_saved_variables();
    const auto w_dtype = static_cast<at::ScalarType>(ctx->saved_data["w_dtype"].toInt());
    const at::Tensor& g = grads[0];
    at::Tensor dw, w_grad = ctx->saved_data["w_grad"].toTensor();
    if (w_grad.defined()) {
      w_grad.add_(saved[1], g.item<double>());
    } else {
      dw = (saved[1] * g).to(w_dtype);
    }
    return {saved[0] * g.to(saved[0].scalar_type()), dw, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

int64_t cross_entropy_chunk_rows(int64_t vocab_cols) {
  constexpr int64_t kChunkBytes = int64_t{32} << 20;
  return std::max<int64_t>(1, kChunkBytes / (vocab_cols * 4));
}

at::Tensor vocab_parallel_cross_entropy(const at::Tensor& x, const at::Tensor& w, const at::Tensor& targets,
                                        int64_t vocab_size, const TensorParallel& tp, int64_t chunk_rows) {
  const at::Tensor full = tensor_parallel_input(x, tp);                    // [s, b, h]
  const bool grad = at::GradMode::is_enabled() && (full.requires_grad() || w.requires_grad());
  return FusedCrossEntropy::apply(full.reshape({-1, full.size(-1)}).contiguous(), w, targets.reshape({-1}),
                                  vocab_size, tp.comm, chunk_rows, grad);
}

}  // namespace llama2
