// Fused, chunked vocab-parallel cross-entropy: the lm_head GEMM, softmax and their gradient a chunk of
// tokens at a time; softmax statistics reduced over TP; neither full logits nor the full vocabulary exist.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/communicator.h"
#include "llama2/layers.h"
#include "llama2/matmul.h"
#include "llama2/phases.h"

namespace llama2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

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
    at::Tensor dx = grad ? at::empty_like(x) : at::Tensor();
    at::Tensor dw = grad ? at::empty({cols, w.size(1)}, w.options().dtype(acc)) : at::Tensor();
    const at::Tensor local_targets = targets - start;

    for (int64_t r0 = 0; r0 < tokens; r0 += rows) {
      const int64_t n = std::min(rows, tokens - r0);
      const at::Tensor xc = x.narrow(0, r0, n);                            // [n, h]
      at::Tensor z = logits.narrow(0, 0, n);                               // [n, Vl]
      {
        ScopedPhase phase(Phase::Gemm);
        matmul_into(xc, false, w, true, z, false);
      }
      const at::Tensor zv = z.narrow(1, 0, valid);
      const at::Tensor local = local_targets.narrow(0, r0, n);
      const at::Tensor inside = (local >= 0).logical_and(local < valid);
      const at::Tensor index = local.clamp(0, std::max<int64_t>(valid - 1, 0)).unsqueeze(1);  // [n, 1]
      at::Tensor max;
      {
        ScopedPhase phase(Phase::Loss);
        max = std::get<0>(zv.max(1)).contiguous();                         // [n]
      }
      tp->all_reduce(max, ReduceOp::Max);
      at::Tensor stats = at::empty({2, n}, z.options());                   // Σ exp(z - max), z[target] - max
      {
        ScopedPhase phase(Phase::Loss);
        zv.sub_(max.unsqueeze(1));
        at::Tensor target = zv.gather(1, index).squeeze(1).mul_(inside.to(acc));
        zv.exp_();
        stats[0].copy_(zv.sum(1));
        stats[1].copy_(target);
      }
      tp->all_reduce(stats);
      at::Tensor g;  // d(mean loss)/dz = (softmax - onehot(target)) / T; 0 in padding columns
      {
        ScopedPhase phase(Phase::Loss);
        losses.narrow(0, r0, n).copy_(stats[0].log() - stats[1]);
        if (!grad) continue;
        zv.mul_((1.0 / static_cast<double>(tokens)) / stats[0].unsqueeze(1));
        zv.scatter_add_(1, index, inside.to(acc).unsqueeze(1).mul_(-1.0 / static_cast<double>(tokens)));
        if (valid < cols) z.narrow(1, valid, cols - valid).zero_();
        g = z.scalar_type() == x.scalar_type() ? z : z.to(x.scalar_type());
      }
      ScopedPhase phase(Phase::Gemm);
      at::Tensor dxc = dx.narrow(0, r0, n);
      matmul_into(g, false, w, false, dxc, false);                         // dx = g @ w     [n, h]
      matmul_into(g, true, xc, false, dw, r0 > 0);                         // dw += g^T @ x  [Vl, h]
    }
    if (grad) {
      ctx->save_for_backward({dx, dw});
      ctx->saved_data["w_dtype"] = static_cast<int64_t>(w.scalar_type());
      // A weight whose .grad exists (the optimizer's flat buffer) gets dw added to it in backward directly.
      const at::Tensor& w_grad = w.grad();
      const bool direct = w_grad.defined() && w_grad.is_contiguous() && w_grad.scalar_type() == w.scalar_type();
      ctx->saved_data["w_grad"] = direct ? w_grad : at::Tensor();
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
