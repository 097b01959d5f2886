// AdamW arithmetic against torch::optim::AdamW, and learning-rate values at chosen steps by hand.
#include <torch/optim/adamw.h>

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
