// ZeRO-1 AdamW: flat buffers, reduce-scatter of grads over DP, fp32 master shard, all-gather of params.
#include "llama2/optim/adamw.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>

#include "llama2/dist/communicator.h"
#include "llama2/kernels/dtype_conversion.h"
#include "llama2/kernels/vector_math.h"
#include "llama2/util/errors.h"
#include "llama2/util/phases.h"

namespace llama2 {

namespace {

struct AdamWStep {
  float step_size, inv_sqrt_bias2, b1, b2, eps, lr_wd, grad_scale;
};

// Elements [begin, end) of one fp32 shard, torch.optim.AdamW's arithmetic (decoupled decay first, then Adam);
// kRound: each updated p also rounded to bf16 into `rounded` (one pass, where a separate conversion and copy of
// the whole model took ~70 ms per 58M-parameter step).
template <bool kRound>
LLAMA2_CPU_CLONES void adamw_elements(float* p, float* m, float* v, const float* g, c10::BFloat16* rounded,
                                      const AdamWStep& c, int64_t begin, int64_t end) {
  const AdamWStep k = c;  // locals: the loop must not reload them through a pointer its stores might alias
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    const float gi = g[i] * k.grad_scale;
    p[i] *= 1 - k.lr_wd;
    m[i] += (1 - k.b1) * (gi - m[i]);
    v[i] = k.b2 * v[i] + (1 - k.b2) * gi * gi;
    p[i] -= k.step_size * m[i] / (std::sqrt(v[i]) * k.inv_sqrt_bias2 + k.eps);
    if constexpr (kRound) rounded[i] = from_acc<c10::BFloat16>(p[i]);
  }
}

// Σ x[i]² over [begin, end), in fp64.
LLAMA2_CPU_CLONES double sum_squares(const float* x, int64_t begin, int64_t end) {
  double acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = begin; i < end; ++i) acc += static_cast<double>(x[i]) * x[i];
  return acc;
}

}  // namespace

void adamw_update(at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg, at::Tensor& exp_avg_sq,
                  double decay, int64_t step, double lr, const AdamWOptions& o, double grad_scale,
                  const at::Tensor& rounded) {
  if (rounded.defined() && (rounded.scalar_type() != at::kBFloat16 || !rounded.is_contiguous() ||
                            rounded.numel() != param.numel()))
    throw RuntimeFailure(fmt::format("adamw_update: the rounded copy must be contiguous bf16 of {} elements, got {} {}",
                                     param.numel(), c10::toString(rounded.scalar_type()), c10::str(rounded.sizes())));
  const double bias1 = 1 - std::pow(o.beta1, static_cast<double>(step));
  const double bias2 = 1 - std::pow(o.beta2, static_cast<double>(step));
  const AdamWStep c{static_cast<float>(lr / bias1), static_cast<float>(1 / std::sqrt(bias2)),
                    static_cast<float>(o.beta1), static_cast<float>(o.beta2), static_cast<float>(o.eps),
                    static_cast<float>(lr * o.weight_decay * decay), static_cast<float>(grad_scale)};
  float *p = param.data_ptr<float>(), *m = exp_avg.data_ptr<float>(), *v = exp_avg_sq.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  c10::BFloat16* r = rounded.defined() ? rounded.data_ptr<c10::BFloat16>() : nullptr;
  at::parallel_for(0, param.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    r ? adamw_elements<true>(p, m, v, g, r, c, begin, end) : adamw_elements<false>(p, m, v, g, r, c, begin, end);
  });
  // Written through pointers: move the version counter (shared with every view of the same storage) as an in-place
  // ATen op would, so that readers keyed on it see the change (packed_weights.h).
  param.unsafeGetTensorImpl()->bump_version();
  if (r) rounded.unsafeGetTensorImpl()->bump_version();
}

ShardedAdamW::ShardedAdamW(std::vector<Parameter>& params, const Communicator& tp, const Communicator& dp,
                           const AdamWOptions& options)
    : tp_(tp), dp_(dp), options_(options), layout_(params, tp.size(), options.zero_1 ? dp.size() : 1) {
  c10::AutoGradMode no_grad(false);
  const int64_t padded = layout_.padded(), shard_numel = layout_.shard_numel();
  shard_offset_ = options.zero_1 ? layout_.shard_begin(dp.rank()) : 0;
  const auto dtype = params.at(0).value.scalar_type();
  flat_params_ = at::zeros({padded}, at::TensorOptions().dtype(dtype));
  flat_grads_ = at::zeros({padded}, at::TensorOptions().dtype(
      dtype == at::kBFloat16 && options.fp32_main_grads ? at::kFloat : dtype));
  for (size_t i : layout_.order()) {
    Parameter& p = params[i];
    const int64_t n = p.value.numel();
    flat_params_.narrow(0, layout_.offset(i), n).copy_(p.value.reshape({-1}));
    p.value = flat_params_.narrow(0, layout_.offset(i), n).view(p.value.sizes()).detach().set_requires_grad(true);
    p.value.mutable_grad() = flat_grads_.narrow(0, layout_.offset(i), n).view(p.value.sizes());
  }
  shard_norm_numel_ = std::clamp<int64_t>(layout_.norm_numel() - shard_offset_, 0, shard_numel);
  const at::Tensor param_shard = flat_params_.narrow(0, shard_offset_, shard_numel);
  master_ = dtype == at::kFloat ? param_shard : param_shard.to(at::kFloat);
  exp_avg_ = at::zeros({shard_numel}, at::kFloat);
  exp_avg_sq_ = at::zeros({shard_numel}, at::kFloat);
  buckets_ = std::make_unique<GradientBuckets>(flat_grads_, layout_, options.bucket_numel, dp, options.zero_1);
}

void ShardedAdamW::gradients_ready(const std::vector<size_t>& params) { buckets_->mark_ready(params); }

void ShardedAdamW::zero_grad() {
  if (buckets_->in_progress()) buckets_->finish();  // a step that was not applied (non-finite loss)
  flat_grads_.zero_();
}

int64_t ShardedAdamW::state_bytes() const {
  return static_cast<int64_t>((separate_master() ? master_.nbytes() : 0) + exp_avg_.nbytes() + exp_avg_sq_.nbytes());
}

double ShardedAdamW::global_grad_norm(const at::Tensor& grad_shard) const {
  const auto sum_squares_of = [](const at::Tensor& g) {
    const float* x = g.data_ptr<float>();
    return at::parallel_reduce(
        0, g.numel(), 1 << 14, 0.0,
        [&](int64_t begin, int64_t end, double acc) { return acc + sum_squares(x, begin, end); },
        std::plus<double>());
  };
  // Norm weights are replicated over TP: only TP rank 0 counts them.
  double local = sum_squares_of(grad_shard.narrow(0, shard_norm_numel_, shard_numel() - shard_norm_numel_));
  if (tp_.rank() == 0) local += sum_squares_of(grad_shard.narrow(0, 0, shard_norm_numel_));
  at::Tensor sum_sq = at::full({1}, local, at::kDouble);
  tp_.all_reduce(sum_sq);
  if (options_.zero_1) dp_.all_reduce(sum_sq);
  return std::sqrt(sum_sq.item<double>());
}

at::Tensor ShardedAdamW::reduce_gradients() {
  c10::AutoGradMode no_grad(false);
  if (options_.sequence_parallel && tp_.size() > 1 && layout_.norm_numel() > 0) {  // each TP rank saw s/tp positions
    at::Tensor norms = flat_grads_.narrow(0, 0, layout_.norm_numel()).to(at::kFloat);
    tp_.all_reduce(norms);
    flat_grads_.narrow(0, 0, layout_.norm_numel()).copy_(norms);
  }
  // The DP sum in fp32 (bf16 gradients are widened bucket by bucket); buckets that backward already
  // completed are in flight (gradients_ready), the rest go now.
  at::Tensor grad_shard = buckets_->finish();
  if (dp_.size() > 1) grad_shard.div_(dp_.size());  // a pass over every gradient: not for nothing
  return grad_shard;
}

StepResult ShardedAdamW::step(double lr) {
  c10::AutoGradMode no_grad(false);
  at::Tensor grad_shard = reduce_gradients();
  StepResult result;
  result.grad_norm = global_grad_norm(grad_shard);
  if (!std::isfinite(result.grad_norm)) return result;
  const double clip = options_.max_grad_norm > 0 && result.grad_norm > options_.max_grad_norm
                          ? options_.max_grad_norm / (result.grad_norm + 1e-6)
                          : 1.0;
  ++step_;
  {
    ScopedPhase phase(Phase::Optimizer);
    // This shard's part of the norm prefix decays only with weight_decay_norms; the rest always.
    // A bf16 model's parameters of this shard are rounded from the master as it is updated.
    const auto update = [&](int64_t begin, int64_t count, double decay) {
      at::Tensor p = master_.narrow(0, begin, count), m = exp_avg_.narrow(0, begin, count),
                 v = exp_avg_sq_.narrow(0, begin, count);
      const at::Tensor rounded =
          separate_master() ? flat_params_.narrow(0, shard_offset_ + begin, count) : at::Tensor();
      adamw_update(p, grad_shard.narrow(0, begin, count), m, v, decay, step_, lr, options_, clip, rounded);
    };
    update(0, shard_norm_numel_, options_.weight_decay_norms ? 1.0 : 0.0);
    update(shard_norm_numel_, shard_numel() - shard_norm_numel_, 1.0);
  }

  gather_params();
  result.applied = true;
  return result;
}

void ShardedAdamW::gather_params() {
  if (!options_.zero_1 || dp_.size() == 1) return;  // every rank updated all of flat_params_
  dp_.all_gather_in_place(flat_params_);            // rank r's shard sits at shard_begin(r) = r·shard_numel
  flat_params_.unsafeGetTensorImpl()->bump_version();  // written by MPI: as adamw_update, for packed_weights.h
}

}  // namespace llama2
