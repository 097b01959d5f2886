// Vocab-parallel cross-entropy: softmax statistics reduced over TP, the full vocabulary never gathered.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/communicator.h"
#include "llama2/layers.h"
#include "llama2/phases.h"

namespace llama2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

class VocabParallelCrossEntropy : public torch::autograd::Function<VocabParallelCrossEntropy> {
 public:
  // logits [T, Vl], targets [T] → loss [T] (fp32)
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& targets,
                            int64_t vocab_size, const Communicator* tp) {
    ScopedPhase phase(Phase::Loss);
    const int64_t cols = logits.size(1);
    const int64_t start = tp->rank() * cols;
    const int64_t valid = std::max<int64_t>(0, std::min(cols, vocab_size - start));
    const at::Tensor z = logits.narrow(1, 0, valid).to(at::promote_types(logits.scalar_type(), at::kFloat));

    at::Tensor max = std::get<0>(z.max(1)).contiguous();              // [T]
    tp->all_reduce(max, ReduceOp::Max);
    at::Tensor exp = (z - max.unsqueeze(1)).exp_();                   // [T, valid]
    at::Tensor sum_exp = exp.sum(1);                                  // [T]
    tp->all_reduce(sum_exp);

    const at::Tensor local = targets - start;
    const at::Tensor inside = (local >= 0).logical_and(local < valid);
    const at::Tensor index = local.clamp(0, std::max<int64_t>(valid - 1, 0)).unsqueeze(1);
    at::Tensor target_logit = (z.gather(1, index).squeeze(1) - max) * inside.to(z.scalar_type());  // [T]
    tp->all_reduce(target_logit);

    exp.div_(sum_exp.unsqueeze(1));                                   // softmax [T, valid]
    ctx->save_for_backward({exp, index, inside});
    ctx->saved_data["cols"] = cols;
    ctx->saved_data["dtype"] = static_cast<int64_t>(logits.scalar_type());
    return sum_exp.log() - target_logit;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    ScopedPhase phase(Phase::Loss);
    const auto saved = ctx->get_saved_variables();
    at::Tensor d = saved[0].clone();                                  // softmax [T, valid]
    d.scatter_add_(1, saved[1], -saved[2].to(d.scalar_type()).unsqueeze(1));
    d.mul_(grads[0].unsqueeze(1));
    const int64_t cols = ctx->saved_data["cols"].toInt();
    if (d.size(1) < cols) d = at::constant_pad_nd(d, {0, cols - d.size(1)});
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    return {d.to(dtype), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor vocab_parallel_cross_entropy(const at::Tensor& logits, const at::Tensor& targets, int64_t vocab_size,
                                        const TensorParallel& tp) {
  const at::Tensor flat = logits.reshape({-1, logits.size(-1)});
  return VocabParallelCrossEntropy::apply(flat, targets.reshape({-1}), vocab_size, tp.comm)
      .view(targets.sizes());
}

}  // namespace llama2
