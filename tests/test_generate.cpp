// Generation against recomputation and against the independent reference Llama; the sampler by hand.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "llama2/model/llama.h"
#include "llama2/infer/generate.h"
#include "llama2/infer/sampler.h"
#include "test_support.h"

namespace llama2::testing {
namespace {


// The KV-cache path (a 5-token prompt in one pass, then 7 tokens one at a time) gives the logits that the
// full forward of each whole prefix gives for its last position. GQA; fp64 (tolerance 1e-10 of the scale) and bf16
// (the cache in bf16, read in place; the two attention kernels round the probabilities and the output to bf16
// at different points: 3e-2 of the scale; measured up to 1.2e-2).
TEST(Generate, KvCacheEqualsRecomputingThePrefix) {
  const ModelConfig c = small_config();
  for (const auto& [dtype, tolerance] : {std::pair{at::kDouble, 1e-10}, std::pair{at::kBFloat16, 3e-2}}) {
    const Llama model(c, single_rank(), {12, 11, dtype});
    c10::AutoGradMode no_grad(false);
    const at::Tensor tokens = random_tokens(1, 12, c.vocab_size, 4);
    KvCache cache = model.empty_cache(1, 12);
    for (int64_t end = 5; end <= 12; ++end) {
      const at::Tensor cached = model.extend(tokens.narrow(1, cache.length, end - cache.length), cache);  // [1, V]
      const at::Tensor full = model.logits(tokens.narrow(1, 0, end))[end - 1];                            // [1, V]
      EXPECT_EQ(cache.length, end);
      EXPECT_TRUE(close_to_scale(cached.to(at::kDouble), full.to(at::kDouble), tolerance))
          << c10::toString(dtype) << " prefix of " << end;
    }
  }
}

// Greedy decoding with the cache equals greedy decoding by the reference Llama (fp64, unfused HF weights, the
// whole sequence recomputed for every token), token for token, over 12 tokens (no EOS: id -1).
TEST(Generate, GreedyEqualsReferenceLlamaWithoutCache) {
  ModelConfig c = small_config();
  const Llama model(c, single_rank(), {20, 13, at::kDouble});
  const std::vector<int> prompt = {1, 17, 42, 5};
  Sampler greedy({0.0, 0, 1.0, 0});
  const std::vector<int> ours = generate_tokens(model, prompt, 12, -1, greedy);
  c10::AutoGradMode no_grad(false);
  const Weights weights = unfused_weights(model);
  std::vector<int64_t> sequence(prompt.begin(), prompt.end());
  std::vector<int> reference;
  for (int i = 0; i < 12; ++i) {
    const at::Tensor logits = reference_logits(c, weights, at::tensor(sequence).view({1, -1}));  // [1, s, V]
    reference.push_back(static_cast<int>(logits[0][-1].argmax().item<int64_t>()));
    sequence.push_back(reference.back());
  }
  EXPECT_EQ(ours, reference);
}

// Decoding stops at EOS, which is not returned: greedy decoding whose first choice is declared EOS gives nothing.
TEST(Generate, StopsAtEos) {
  const ModelConfig c = small_config();
  const Llama model(c, single_rank(), {20, 13, at::kFloat});
  Sampler greedy({0.0, 0, 1.0, 0});
  const std::vector<int> free_run = generate_tokens(model, {1, 17}, 3, -1, greedy);
  ASSERT_EQ(free_run.size(), 3u);
  EXPECT_TRUE(generate_tokens(model, {1, 17}, 3, free_run[0], greedy).empty());
}

TEST(Sampler, TopKOneAndZeroTemperatureAreGreedy) {
  const at::Tensor logits = at::randn({50}, at::kFloat);
  const int64_t best = logits.argmax().item<int64_t>();
  Sampler top1({1.0, 1, 1.0, 3}), cold({0.0, 0, 1.0, 3});
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(top1.next(logits), best);
    EXPECT_EQ(cold.next(logits), best);
  }
}

TEST(Sampler, TheSameSeedRepeatsItsTokensAndAnotherDoesNot) {
  const at::Tensor logits = at::zeros({1000});  // uniform: every draw is a fresh choice
  Sampler a({1.0, 0, 1.0, 7}), b({1.0, 0, 1.0, 7}), other({1.0, 0, 1.0, 8});
  std::vector<int64_t> ta, tb, tother;
  for (int i = 0; i < 32; ++i) {
    ta.push_back(a.next(logits));
    tb.push_back(b.next(logits));
    tother.push_back(other.next(logits));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tother);
}

// Probabilities 0.6, 0.3, 0.1 (by hand: logits log p). top_p 0.5 keeps only the first; 0.85 the first two;
// top_k 2 the first two. 2000 draws: the frequencies of the kept tokens within 4 standard deviations.
TEST(Sampler, TopPAndTopKKeepTheMostLikelyTokens) {
  const at::Tensor logits = at::tensor({std::log(0.1), std::log(0.6), std::log(0.3)}, at::kDouble);
  Sampler nucleus_small({1.0, 0, 0.5, 1}), nucleus({1.0, 0, 0.85, 2}), top2({1.0, 2, 1.0, 3});
  int first = 0, first_k = 0;
  for (int i = 0; i < 2000; ++i) {
    EXPECT_EQ(nucleus_small.next(logits), 1);
    const int64_t n = nucleus.next(logits), k = top2.next(logits);
    ASSERT_NE(n, 0);
    ASSERT_NE(k, 0);
    first += n == 1;
    first_k += k == 1;
  }
  const double sd = std::sqrt(2000 * (2.0 / 3) * (1.0 / 3));  // 0.6/0.9 after renormalising
  EXPECT_NEAR(first, 2000 * 2.0 / 3, 4 * sd);
  EXPECT_NEAR(first_k, 2000 * 2.0 / 3, 4 * sd);
}

}  // namespace
}  // namespace llama2::testing
