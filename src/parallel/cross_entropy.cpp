// Fused, chunked vocab-parallel cross-entropy: the lm_head GEMM, softmax and their gradient a chunk of tokens at a
// time and, within a chunk, a tile of vocabulary columns at a time (online softmax statistics while the tile is in
// cache); statistics reduced over TP; neither full logits nor the full vocabulary exist.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <fmt/format.h>

#include "llama2/dist/communicator.h"
#include "llama2/kernels/dtype_conversion.h"
#include "llama2/kernels/linear.h"
#include "llama2/kernels/matmul.h"
#include "llama2/kernels/transpose.h"
#include "llama2/kernels/vector_math.h"
#include "llama2/kernels/workers.h"
#include "llama2/parallel/layers.h"
#include "llama2/util/errors.h"
#include "llama2/util/phases.h"

namespace llama2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// How far above a row's reference a tile's logit may lie before the tile's exponentials are taken relative to the
// tile's own max instead: they stay ≤ exp(20) ≈ 4.9e8, far inside fp32's and bf16's range even summed over a
// vocabulary.
constexpr float kReferenceSlack = 20;

// Σ exp(z − ref) over a row z [n] in one pass, each exponential to out (fp32), and z's max to top.
template <typename A>
LLAMA2_INLINE A exponentials(const A* z, int64_t n, A ref, A* out, A& top) {
  A sum = 0, high = z[0];
#pragma omp simd reduction(+ : sum) reduction(max : high)
  for (int64_t j = 0; j < n; ++j) {
    out[j] = vector_exp(z[j] - ref);
    sum += out[j];
    high = high > z[j] ? high : z[j];
  }
  top = high;
  return sum;
}

// One tile z [rows, cols] (ldz) of logits, columns [j0, j0 + cols) of this rank's, folded into a worker's online
// softmax statistics per row: a reference m and Σ exp(z − m) s, and the target's logit (left alone for a target
// outside the tile). m is the max of the worker's first tile (`first`: m, s, target not yet set), raised only
// where a later tile's logits exceed it by more than kReferenceSlack: a tile takes one pass, not a max pass and
// an exponential pass. With `e`, the tile's exponentials exp(z − m) (m recorded in m_used) go to e [rows, cols]
// (lde) in the GEMMs' type, by way of `row` (fp32 [cols]) where that is bf16: the gradient is then
// e · exp(m_used − lse), without a second exponential.
template <typename T>
LLAMA2_CPU_CLONES void fold_tile(const Acc<T>* z, int64_t ldz, int64_t rows, int64_t cols, int64_t j0,
                                 const int64_t* t, bool first, Acc<T>* m, Acc<T>* s, Acc<T>* target, T* e,
                                 int64_t lde, Acc<T>* m_used, int64_t ld_used, Acc<T>* row) {
  using A = Acc<T>;
  constexpr bool kDirect = std::is_same_v<T, A>;  // the exponentials go straight to e
  for (int64_t r = 0; r < rows; ++r) {
    const A* zr = z + r * ldz;
    if (t[r] >= j0 && t[r] < j0 + cols) target[r] = zr[t[r] - j0];
    else if (first) target[r] = 0;
    A top = zr[0];
    if (first) {
#pragma omp simd reduction(max : top)
      for (int64_t j = 1; j < cols; ++j) top = top > zr[j] ? top : zr[j];
    }
    A ref = first ? top : m[r], s_before = first ? 0 : s[r];
    A* out = row;  // without e the exponentials land here, unread
    if constexpr (kDirect) {
      if (e != nullptr) out = e + r * lde;
    }
    A sum = exponentials(zr, cols, ref, out, top);
    if (top > ref + static_cast<A>(kReferenceSlack)) {  // rare: relative to the tile's max instead
      s_before *= vector_exp(ref - top);
      ref = top;
      sum = exponentials(zr, cols, ref, out, top);
    }
    if constexpr (!kDirect) {
      if (e != nullptr) from_acc_row(row, e + r * lde, cols);
    }
    if (e != nullptr) m_used[r * ld_used] = ref;
    s[r] = s_before + sum;
    m[r] = ref;
  }
}

// g [rows, cols] ← (e · exp(m_used − lse) − [column = target]) · scale: d(mean loss)/dz of a tile from its kept
// exponentials e (ld), in the GEMMs' type, contiguous; and gt [cols, rows] ← its transpose. Both are GEMM sources,
// and oneDNN's AMX and brgemm kernels take neither a transposed one nor one with rows further apart than its width.
template <typename T>
LLAMA2_CPU_CLONES void gradient_tile(const T* e, int64_t ld, int64_t rows, int64_t cols, int64_t j0, const int64_t* t,
                                     const Acc<T>* m_used, int64_t ld_used, const Acc<T>* lse, Acc<T> scale, T* g,
                                     T* gt) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* er = e + r * ld;
    T* gr = g + r * cols;
    const Acc<T> factor = vector_exp(m_used[r * ld_used] - lse[r]) * scale;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) gr[j] = from_acc<T>(to_acc(er[j]) * factor);
    if (t[r] >= j0 && t[r] < j0 + cols) gr[t[r] - j0] = from_acc<T>(to_acc(gr[t[r] - j0]) - scale);
  }
  transpose(g, rows, cols, cols, gt, rows);
}

// A chunk of tokens through the lm_head and the loss, tile by tile over the vocabulary: x [n, h] (the chunk's
// rows), w [valid, h] (this rank's vocabulary rows without padding), t [n] (targets relative to this rank's first
// column). Workers take vocabulary blocks; their statistics are combined in worker order.
template <typename T>
class ChunkTiles {
 public:
  using A = Acc<T>;
  ChunkTiles(int64_t max_rows, int64_t valid, int64_t h, bool grad, const at::TensorOptions& options)
      : max_rows_(max_rows), valid_(valid), h_(h),
        blocks_((valid + kCrossEntropyVocabBlock - 1) / kCrossEntropyVocabBlock),
        workers_(workers_for(blocks_)),
        stats_(workers_, 3 * max_rows, options),
        z_tile_(workers_, (max_rows + 1) * kCrossEntropyVocabBlock, options),
        gradient_(workers_, grad ? 2 * max_rows * kCrossEntropyVocabBlock : 0, options),
        dx_parts_(workers_, grad ? max_rows * h : 0, options) {
    if (!grad) return;
    exps_ = at::empty({max_rows, valid}, options);  // in the GEMMs' type
    m_used_ = at::empty({max_rows, blocks_}, options.dtype(c10::CppTypeToScalarType<A>()));
  }

  // m (a reference near the max), s (Σ exp(z − m)) and the target logit per row [3, n], over this rank's
  // vocabulary; with grad, each tile's exponentials are kept for gradients().
  void statistics(const T* x, const T* w, const int64_t* t, int64_t n, A* out) {
    const bool keep = exps_.defined();
    for_each_task(blocks_, workers_, [&](int64_t b, int64_t worker) {
      const int64_t j0 = b * kCrossEntropyVocabBlock, cols = std::min(kCrossEntropyVocabBlock, valid_ - j0);
      T* e = keep ? exps_.template data_ptr<T>() + j0 * n : nullptr;  // the tile's [n, cols], contiguous
      A* z = z_tile_[worker];
      tile_matmul(matrix(x, n, h_, h_), matrix(w + j0 * h_, cols, h_, h_, true), z, cols, false);  // [n, cols]
      A* st = stats_[worker];
      A* used = keep ? m_used_.template data_ptr<A>() + b : nullptr;
      fold_tile<T>(z, cols, n, cols, j0, t, b == worker, st, st + n, st + 2 * n, e, cols, used, blocks_,
                   z + max_rows_ * kCrossEntropyVocabBlock);
    });  // for_each_task: worker w starts at block w
    for (int64_t r = 0; r < n; ++r) {  // combine the workers' statistics in worker order
      A m = stats_[0][r];
      for (int64_t k = 1; k < workers_; ++k) m = std::max(m, stats_[k][r]);
      A s = 0, target = 0;
      for (int64_t k = 0; k < workers_; ++k) {
        s += stats_[k][n + r] * vector_exp(stats_[k][r] - m);
        target += stats_[k][2 * n + r];
      }
      out[r] = m, out[n + r] = s, out[2 * n + r] = target;
    }
  }

  // dx [n, h] (T) and dw [valid, h] (A, += with `accumulate`) from the kept exponentials and each row's
  // log-sum-exp, tile by tile while the tile is in cache: dw's rows of the tile (+)= gᵀ·x, and the worker's part
  // of dx += g·w (one GEMM for dx with the whole vocabulary as its inner dimension measured 30% slower: it reads
  // w from memory again for every block of dx's rows).
  void gradients(const T* x, const T* w, const int64_t* t, int64_t n, const A* lse, A scale, T* dx, A* dw,
                 bool accumulate) {
    const T* e = exps_.template data_ptr<T>();
    const A* used = m_used_.template data_ptr<A>();
    for_each_task(blocks_, workers_, [&](int64_t b, int64_t worker) {
      const int64_t j0 = b * kCrossEntropyVocabBlock, cols = std::min(kCrossEntropyVocabBlock, valid_ - j0);
      T *g = gradient_[worker], *gt = g + n * cols;
      gradient_tile<T>(e + j0 * n, cols, n, cols, j0, t, used + b, blocks_, lse, scale, g, gt);
      tile_matmul(matrix(gt, cols, n, n), matrix(x, n, h_, h_), dw + j0 * h_, h_, accumulate);  // [cols, h]
      tile_matmul(matrix(g, n, cols, cols), matrix(w + j0 * h_, cols, h_, h_), dx_parts_[worker], h_,
                  b != worker);  // [n, h]
    });  // for_each_task: worker w starts at block w
    std::vector<const A*> parts(workers_);
    for (int64_t k = 0; k < workers_; ++k) parts[k] = dx_parts_[k];
    sum_parts<T>(parts.data(), workers_, n * h_, dx);
  }

 private:
  int64_t max_rows_, valid_, h_, blocks_, workers_;
  WorkerBuffers<A> stats_;     // m, s, target per row
  WorkerBuffers<A> z_tile_;    // a tile of logits [max_rows, block] and a row of its exponentials [block]
  WorkerBuffers<T> gradient_;  // with grad: a tile's gradient [n, cols] and its transpose [cols, n]
  WorkerBuffers<A> dx_parts_;  // with grad: the worker's part of a chunk's dx [n, h]
  at::Tensor exps_;            // with grad: each tile's exp(z − m_used), tile b's [n, cols] from b·block·n on
  at::Tensor m_used_;          // [max_rows, blocks] the reference each tile's exponentials are relative to
};

class FusedCrossEntropy : public torch::autograd::Function<FusedCrossEntropy> {
 public:
  // x [T, h], w [Vl, h], targets [T] → mean loss (fp32; fp64 for fp64). With `grad`, dx and dw are computed
  // here, chunk by chunk, scaled by loss_grad/T (loss_grad: the gradient backward is to bring to the loss); backward
  // only rescales them to the gradient it brings. Where w has a gradient buffer of dw's type (the trainer's flat
  // fp32 buffer), dw is added to it here: no [Vl, h] temporary (a new one each step, 65 MB for the 58M model, met
  // heap pages never touched before in the first steps: a page fault per 4 kB its first chunk wrote), no pass
  // adding it in backward; backward then requires the gradient it brings to be loss_grad. A buffer of another type
  // (bf16 main gradients) gets the fp32 dw added by backward, rescaled in the same pass.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& targets,
                            int64_t vocab_size, const Communicator* tp, int64_t chunk_rows, bool grad,
                            double loss_grad) {
    const int64_t tokens = x.size(0), cols = w.size(0), h = w.size(1);
    const int64_t start = tp->rank() * cols;
    const int64_t valid = std::max<int64_t>(0, std::min(cols, vocab_size - start));  // the rest is padding
    const at::ScalarType acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    const int64_t rows =
        std::min(tokens, chunk_rows > 0 ? chunk_rows : cross_entropy_chunk_rows(cols, x.element_size()));
    at::Tensor losses = at::empty({tokens}, x.options().dtype(acc));
    at::Tensor stats = at::empty({3, rows}, x.options().dtype(acc));  // m, Σ exp(z − m), z[target]; per chunk
    at::Tensor dx = grad ? at::empty_like(x) : at::Tensor();
    const at::Tensor w_grad = grad ? gradient_accumulator(w) : at::Tensor();
    const bool into_buffer = w_grad.defined() && w_grad.scalar_type() == acc;
    at::Tensor dw = !grad ? at::Tensor() : into_buffer ? w_grad : at::empty({cols, h}, w.options().dtype(acc));
    if (grad && !into_buffer) dw.narrow(0, valid, cols - valid).zero_();  // padding; the first chunk writes the rest
    const at::Tensor local_targets = targets - start;
    const at::Tensor wc = w.contiguous();

    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "vocab_parallel_cross_entropy", [&] {
      using A = Acc<scalar_t>;
      ChunkTiles<scalar_t> tiles(rows, valid, h, grad, x.options());
      for (int64_t r0 = 0; r0 < tokens; r0 += rows) {
        const int64_t n = std::min(rows, tokens - r0);
        const scalar_t* xc = x.data_ptr<scalar_t>() + r0 * h;
        const int64_t* t = local_targets.data_ptr<int64_t>() + r0;
        at::Tensor st = stats.narrow(1, 0, n).contiguous();
        A* sp = st.data_ptr<A>();
        {
          ScopedPhase phase(Phase::Loss);  // the lm_head's GEMMs are the loss's, fused
          if (valid > 0) tiles.statistics(xc, wc.data_ptr<scalar_t>(), t, n, sp);
          else st.zero_(), st[0].fill_(-std::numeric_limits<A>::infinity());  // a rank holding only padding
        }
        // Across TP: the global max, then each rank's sum rescaled to it and the target logit (one rank's).
        at::Tensor max = st[0];
        const at::Tensor local_max = max.clone();
        tp->all_reduce(max, ReduceOp::Max);
        st[1].mul_((local_max - max).exp_());
        at::Tensor sums = st.narrow(0, 1, 2);
        tp->all_reduce(sums);
        at::Tensor lse;
        {
          ScopedPhase phase(Phase::Loss);
          lse = st[0] + st[1].log();
          losses.narrow(0, r0, n).copy_(lse - st[2]);
        }
        if (!grad || valid == 0) continue;
        ScopedPhase phase(Phase::Loss);
        tiles.gradients(xc, wc.data_ptr<scalar_t>(), t, n, lse.contiguous().data_ptr<A>(),
                        static_cast<A>(loss_grad / static_cast<double>(tokens)), dx.data_ptr<scalar_t>() + r0 * h,
                        dw.data_ptr<A>(), into_buffer || r0 > 0);
      }
      if (grad && valid == 0) dx.zero_();
    });
    if (grad) {
      ctx->save_for_backward({dx, into_buffer ? at::Tensor() : dw});
      ctx->saved_data["w_grad"] = into_buffer ? at::Tensor() : w_grad;  // a buffer of another type, or none
      ctx->saved_data["w_dtype"] = static_cast<int64_t>(w.scalar_type());
      ctx->saved_data["loss_grad"] = loss_grad;
    }
    return losses.mean();
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    ScopedPhase phase(Phase::Loss);
    const auto saved = ctx->get_saved_variables();
    const auto w_dtype = static_cast<at::ScalarType>(ctx->saved_data["w_dtype"].toInt());
    const double loss_grad = ctx->saved_data["loss_grad"].toDouble(), rescale = grads[0].item<double>() / loss_grad;
    at::Tensor dw, w_grad = ctx->saved_data["w_grad"].toTensor();
    if (w_grad.defined()) {
      add_scaled_into(saved[1].data_ptr<float>(), static_cast<float>(rescale), w_grad.data_ptr<c10::BFloat16>(),
                      w_grad.numel());  // a bf16 buffer: no [Vl, h] temporaries, no autograd pass
    } else if (saved[1].defined()) {
      dw = (saved[1] * rescale).to(w_dtype);
    } else if (std::abs(rescale - 1) > 1e-6) {  // dw is in w's buffer already, made for loss_grad
      throw RuntimeFailure(fmt::format("vocab_parallel_cross_entropy: the lm_head's gradient was added for a loss "
                                       "gradient of {}, but backward brought {}: pass the loss's gradient as loss_grad",
                                       loss_grad, grads[0].item<double>()));
    }
    return {rescale == 1 ? saved[0] : saved[0] * rescale, dw, at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

int64_t cross_entropy_chunk_rows(int64_t vocab_cols, int64_t element_bytes) {
  constexpr int64_t kChunkBytes = int64_t{32} << 20;
  return std::max<int64_t>(1, kChunkBytes / (vocab_cols * element_bytes));
}

at::Tensor vocab_parallel_cross_entropy(const at::Tensor& x, const at::Tensor& w, const at::Tensor& targets,
                                        int64_t vocab_size, const TensorParallel& tp, int64_t chunk_rows,
                                        double loss_grad) {
  const at::Tensor full = tensor_parallel_input(x, tp);                    // [s, b, h]
  const bool grad = at::GradMode::is_enabled() && (full.requires_grad() || w.requires_grad());
  return FusedCrossEntropy::apply(full.reshape({-1, full.size(-1)}).contiguous(), w, targets.reshape({-1}),
                                  vocab_size, tp.comm, chunk_rows, grad, loss_grad);
}

}  // namespace llama2
