// AdamW arithmetic against torch::optim::AdamW, optimizer steps with packed weights against plain ones, and
// learning-rate values at chosen steps by hand.
#include <torch/optim/adamw.h>

#include "llama2/kernels/packed_weights.h"
#include "llama2/optim/adamw.h"
#include "llama2/optim/lr_schedule.h"
#include "test_support.h"

namespace llama2::testing {
namespace {

TEST(AdamW, SingleTensorEqualsTorchOptimAdamW) {
  at::manual_seed(3);
  AdamWOptions o;
  o.beta1 = 0.8;
  o.beta2 = 0.95;
  o.eps = 1e-6;
  o.weight_decay = 0.1;
  const double lr = 1e-2;
  at::Tensor ours = at::randn({37});
  at::Tensor theirs = ours.clone().set_requires_grad(true);
  at::Tensor m = at::zeros({37}), v = at::zeros({37});
  torch::optim::AdamW reference({theirs}, torch::optim::AdamWOptions(lr).betas({o.beta1, o.beta2}).eps(o.eps)
                                              .weight_decay(o.weight_decay));
  for (int64_t step = 1; step <= 20; ++step) {
    const at::Tensor grad = at::randn({37});
    adamw_update(ours, grad, m, v, 1.0, step, lr, o);
    theirs.mutable_grad() = grad.clone();
    reference.step();
  }
  EXPECT_TRUE(all_close(ours, theirs.detach(), 1e-6, 1e-7));
}

// The bf16 copy written in the update's pass equals the updated fp32 param converted by c10 (round to nearest
// even), exactly, over magnitudes from 1e-30 to 1e30 and values halfway between two bf16 numbers.
TEST(AdamW, RoundedCopyEqualsTheUpdatedParamConvertedToBf16) {
  at::manual_seed(5);
  const int64_t n = 4099;  // past whole vectors
  at::Tensor param = at::randn({n}) * at::pow(10.0, at::randint(-30, 31, {n}).to(at::kFloat));
  // 1 + k/128 + 1/256: halfway between two bf16 neighbours (spacing 1/128 in [1, 2)), to round to the even one
  param.narrow(0, 0, 64).copy_(at::arange(64).to(at::kFloat).mul_(1.0f / 128).add_(1.0f + 1.0f / 256));
  at::Tensor m = at::zeros({n}), v = at::zeros({n});
  const at::Tensor rounded = at::full({n}, 7.0, at::kBFloat16);
  AdamWOptions o;
  o.weight_decay = 0;  // lr 0: the update leaves param as it is, ties included
  adamw_update(param, at::randn({n}), m, v, 1.0, 1, 0.0, o, 1.0, rounded);
  EXPECT_TRUE(at::equal(rounded, param.to(at::kBFloat16)));
  adamw_update(param, at::randn({n}), m, v, 1.0, 2, 1e-3, o, 1.0, rounded);  // a real step too
  EXPECT_TRUE(at::equal(rounded, param.to(at::kBFloat16)));
}

TEST(AdamW, ZeroDecayMaskLeavesOnlyTheAdamStep) {
  AdamWOptions o;
  o.weight_decay = 0.5;
  at::Tensor decayed = at::ones({2}), kept = at::ones({2});
  at::Tensor m1 = at::zeros({2}), v1 = at::zeros({2}), m2 = at::zeros({2}), v2 = at::zeros({2});
  adamw_update(decayed, at::zeros({2}), m1, v1, 1.0, 1, 0.1, o);
  adamw_update(kept, at::zeros({2}), m2, v2, 0.0, 1, 0.1, o);
  EXPECT_DOUBLE_EQ(decayed[0].item<float>(), 1.0f - 0.1f * 0.5f);  // p·(1 − lr·wd), zero gradient
  EXPECT_DOUBLE_EQ(kept[0].item<float>(), 1.0f);
}

// The flat gradient (fp32, flat order) of micro-steps of `model` over `batches`, accumulated as `options` says,
// each loss divided by `accumulation` as the trainer does.
at::Tensor accumulated_gradient(Llama& model, const std::vector<at::Tensor>& batches, const AdamWOptions& options,
                                int64_t accumulation) {
  ShardedAdamW optimizer(model.parameters(), Communicator::self(), Communicator::self(), options);
  optimizer.zero_grad();
  const int64_t seq = batches[0].size(1) - 1;
  for (const at::Tensor& b : batches)
    (model.loss(b.narrow(1, 0, seq), b.narrow(1, 1, seq), 1.0 / static_cast<double>(accumulation)) /
     static_cast<double>(accumulation))
        .backward();
  return optimizer.reduce_gradients();
}

// 16 micro-steps of a bf16 model. The reference is the fp64 sum of the 16 micro-steps' own gradients (each
// computed alone, as the trainer computes it): what an exact accumulation would hold. The error of bf16
// arithmetic inside each micro-step is the same for both and not what main gradients are for. fp32 main
// gradients must be closer to the reference than bf16 gradients by at least kFactor.
TEST(MainGradients, Fp32AccumulationOfSixteenMicroStepsBeatsBf16AgainstAnFp64Sum) {
  constexpr double kFactor = 1000;  // measured: ~7e4
  constexpr int64_t kMicroSteps = 16;
  const ModelConfig c = small_config(96, 64, 2);
  const int64_t seq = 32, batch = 2;
  const TensorParallel tp{&Communicator::self(), false};
  Llama model(c, tp, {seq, 5, at::kBFloat16});
  std::vector<at::Tensor> batches;
  for (int64_t u = 0; u < kMicroSteps; ++u) batches.push_back(random_tokens(batch, seq + 1, c.vocab_size, 100 + u));
  AdamWOptions fp32_grads, bf16_grads;
  bf16_grads.fp32_main_grads = false;
  at::Tensor exact_sum;
  for (const at::Tensor& b : batches) {
    const at::Tensor g = accumulated_gradient(model, {b}, fp32_grads, kMicroSteps).to(at::kDouble);
    exact_sum = exact_sum.defined() ? exact_sum + g : g;
  }
  const auto relative_error = [&](const at::Tensor& x) {
    return (x.to(at::kDouble) - exact_sum).norm().item<double>() / exact_sum.norm().item<double>();
  };
  const double error_fp32 = relative_error(accumulated_gradient(model, batches, fp32_grads, kMicroSteps));
  const double error_bf16 = relative_error(accumulated_gradient(model, batches, bf16_grads, kMicroSteps));
  std::printf("16 micro-steps, relative error of the accumulated gradient vs the fp64 sum: fp32 main gradients "
              "%.3e, bf16 gradients %.3e (%.0fx)\n", error_fp32, error_bf16, error_bf16 / error_fp32);
  EXPECT_LT(error_fp32 * kFactor, error_bf16);
}

// Three optimizer steps with packed weights against the same steps with plain ones: fp32 without ZeRO-1, whose
// update writes the parameters in place through pointers (it bumps their version), and bf16, copied from the fp32
// master. A copy
// not refreshed after a step would run the next step on the old weights; each step lowers the loss by far more
// than the tolerance (checked). Tolerance: the GEMMs sum in another order, fp32 1e-5 relative; bf16 activations
// may round the other way, 1e-3.
TEST(PackedWeights, TrainingStepsEqualThoseWithPlainWeights) {
  const ModelConfig c = small_config(96, 64, 2);
  const int64_t seq = 16;
  const TensorParallel tp{&Communicator::self(), false};
  const at::Tensor batch = random_tokens(2, seq + 1, c.vocab_size, 9);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    const auto losses = [&](bool packed) {
      set_weight_packing(packed);
      Llama model(c, tp, {seq, 5, dtype});
      AdamWOptions options;
      options.zero_1 = false;  // fp32: the update is the parameters' own memory (with ZeRO-1 they are copied)
      ShardedAdamW optimizer(model.parameters(), Communicator::self(), Communicator::self(), options);
      std::vector<double> out;
      for (int step = 0; step < 3; ++step) {
        optimizer.zero_grad();
        const at::Tensor loss = model.loss(batch.narrow(1, 0, seq), batch.narrow(1, 1, seq));
        loss.backward();
        optimizer.step(1e-2);
        out.push_back(loss.item<double>());
      }
      if (packed) EXPECT_GT(packed_weight_bytes(), 0) << c10::toString(dtype) << ": no GEMM read a packed copy";
      set_weight_packing(false);
      return out;
    };
    const std::vector<double> plain = losses(false), packed = losses(true);
    const double tolerance = dtype == at::kFloat ? 1e-5 : 1e-3;
    for (size_t i = 0; i < plain.size(); ++i)
      EXPECT_NEAR(packed[i], plain[i], tolerance * plain[i]) << c10::toString(dtype) << " step " << i;
    EXPECT_GT(plain[0] - plain[1], 10 * tolerance * plain[0]) << "a step must change the loss measurably";
  }
}

TEST(LrSchedule, LinearWarmupThenLinearDecayToZero) {
  const LrSchedule s{1e-3, 0, 10, 110, "linear"};
  EXPECT_DOUBLE_EQ(s.at(1), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(5), 5e-4);
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(60), 5e-4);   // halfway through the 100 decay steps
  EXPECT_DOUBLE_EQ(s.at(110), 0.0);
  EXPECT_DOUBLE_EQ(s.at(200), 0.0);   // past max_steps: stays at the end value
}

TEST(LrSchedule, CosineToMinLr) {
  const LrSchedule s{1e-3, 1e-4, 0, 100, "cosine"};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-3);
  EXPECT_NEAR(s.at(50), 1e-4 + 0.9e-3 * 0.5, 1e-15);
  EXPECT_NEAR(s.at(100), 1e-4, 1e-15);
}

}  // namespace
}  // namespace llama2::testing
