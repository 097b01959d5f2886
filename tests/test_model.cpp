// The single-process model against an independent unfused reference, finite differences, causality,
// GQA ≡ repeated-kv MHA, flash attention keeping no probabilities.
#include <malloc.h>

#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <fmt/format.h>

#include "llama2/model/attention.h"
#include "llama2/model/llama.h"
#include "llama2/parallel/layers.h"
#include "reference_llama.h"
#include "test_support.h"

namespace llama2::testing {
namespace {


at::Tensor batch_major(const at::Tensor& logits) { return logits.permute({1, 0, 2}); }  // [s,b,V] → [b,s,V]

TEST(Model, FusedLogitsEqualUnfusedReference) {
  for (bool tied : {false, true}) {
    ModelConfig c = small_config();
    c.tie_word_embeddings = tied;
    const Llama model(c, single_rank(), {16, 7, at::kFloat});
    const at::Tensor tokens = random_tokens(2, 16, c.vocab_size, 1);
    c10::AutoGradMode no_grad(false);
    const at::Tensor ours = batch_major(model.logits(tokens));
    const at::Tensor ref = reference_logits(c, unfused_weights(model), tokens);
    EXPECT_TRUE(all_close(ours, ref, 1e-5, 1e-5)) << "tie_word_embeddings=" << tied;
  }
}

// Flash core attention against softmax(q·kᵀ/√d + mask)·v over full rows with repeated kv heads in fp64 and
// libtorch autograd: forward and every input gradient, GQA (4 query heads on 2 kv heads) and MHA, at lengths that
// are no multiple of the tiles (300: query tiles of 128, 128 and 44 rows in one partial key tile; 1100: key tiles
// of 512, 512 and 76, so the online softmax rescales, and k, v, q and the output's gradient are read packed where
// this CPU's tile GEMMs take packed operands) and one shorter than a tile (5), on one thread and on two
// (tiles shared out between threads, q's gradient summed over per-key-tile parts). The backward always recomputes
// the probabilities (there is no mode that stores them). The reference takes the same (bf16-rounded) inputs.
// Tolerances: fp32 rounding 1e-5; bf16 (8-bit mantissa probabilities and outputs, sums over ≤ 1100 keys in fp32)
// 2e-2 relative plus 2e-2 of the tensor's largest value.
TEST(Attention, FlashTilesEqualFullMaskedSoftmaxAndItsGradients) {
  const int64_t b = 2, nq = 4, d = 16;
  at::manual_seed(5);
  const auto check = [&](int threads, at::ScalarType dtype, int64_t s, int64_t nkv) {
    const std::string what = std::string(c10::toString(dtype)) + " s " + std::to_string(s) + " nkv " +
                             std::to_string(nkv) + " threads " + std::to_string(threads);
    const auto input = [&](int64_t n) { return at::randn({s, b, n, d}).to(dtype).set_requires_grad(true); };
    const at::Tensor q = input(nq), k = input(nkv), v = input(nkv);
    const at::Tensor d_out = at::randn({s, b, nq * d}).to(dtype);
    at::set_num_threads(threads);
    const at::Tensor out = core_attention(q, k, v);
    out.backward(d_out);
    at::set_num_threads(1);

    const auto f64 = [](const at::Tensor& t) { return t.detach().to(at::kDouble).set_requires_grad(true); };
    const at::Tensor q64 = f64(q), k64 = f64(k), v64 = f64(v);
    const auto heads = [&](const at::Tensor& t) {  // [s, b, n, d] → [b, nq, s, d], kv heads repeated
      return t.permute({1, 2, 0, 3}).repeat_interleave(nq / t.size(2), 1);
    };
    const at::Tensor mask = at::full({s, s}, -10000.0, at::kDouble).triu_(1);  // the recipe's constant mask
    const at::Tensor scores = at::matmul(heads(q64), heads(k64).transpose(-1, -2)) / std::sqrt(double(d)) + mask;
    const at::Tensor ref = at::matmul(scores.softmax(-1), heads(v64)).permute({2, 0, 1, 3}).reshape({s, b, nq * d});
    ref.backward(d_out.to(at::kDouble));
    const auto close = [&](const at::Tensor& ours, const at::Tensor& reference) {
      if (dtype == at::kFloat) return all_close(ours, reference, 1e-5, 1e-5);
      return all_close(ours, reference, 2e-2, 2e-2 * reference.abs().max().item<double>());
    };
    EXPECT_TRUE(close(out, ref)) << what;
    EXPECT_TRUE(close(q.grad(), q64.grad())) << what;
    EXPECT_TRUE(close(k.grad(), k64.grad())) << what;
    EXPECT_TRUE(close(v.grad(), v64.grad())) << what;
  };
  for (const int threads : {1, 2})
    for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16})
      for (const int64_t s : {int64_t{5}, int64_t{300}, int64_t{1100}})
        for (const int64_t nkv : {int64_t{2}, int64_t{4}}) check(threads, dtype, s, nkv);
}

// Core attention's output and gradients are bit for bit the same on 1, 2 and 3 threads (workers take tasks as they
// come free; q's gradient is summed per query tile in key-tile order, not per worker): fp32 and bf16, GQA, 1100
// positions (3 key tiles, 9 query tiles a head). Exact equality, no tolerance.
TEST(Attention, SameBitsOnAnyThreadCount) {
  const int64_t s = 1100, b = 2, nq = 4, nkv = 2, d = 16;
  const int threads = at::get_num_threads();
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    at::manual_seed(11);
    const auto input = [&](int64_t n) { return at::randn({s, b, n, d}).to(dtype); };
    const at::Tensor q = input(nq), k = input(nkv), v = input(nkv), d_out = at::randn({s, b, nq * d}).to(dtype);
    std::vector<at::Tensor> first;  // out, d_q, d_k, d_v on one thread
    for (const int n : {1, 2, 3}) {
      at::set_num_threads(n);
      const at::Tensor q_n = q.clone().set_requires_grad(true), k_n = k.clone().set_requires_grad(true);
      const at::Tensor v_n = v.clone().set_requires_grad(true);
      const at::Tensor out = core_attention(q_n, k_n, v_n);
      out.backward(d_out);
      const std::vector<at::Tensor> results = {out.detach(), q_n.grad(), k_n.grad(), v_n.grad()};
      if (first.empty()) first = results;
      for (size_t i = 0; i < results.size(); ++i)
        EXPECT_TRUE(at::equal(results[i], first[i])) << c10::toString(dtype) << ", threads " << n << ", result " << i;
    }
  }
  at::set_num_threads(threads);
}

// The fused, tiled loss against log_softmax of full fp64 logits: vocabularies inside one 256-column tile and over
// several (600: two whole tiles and a partial one), chunks that do and do not divide the 38 tokens, 1 and 2
// threads (a worker folding several tiles), fp32 and bf16, logits of spread ~1 and ~120 (rows whose later tiles
// pass their reference's slack). Tolerances: the loss 1e-5 relative; gradients 1e-5 of their scale in fp32, 1e-2
// in bf16 (the GEMMs read the gradient tiles rounded to bf16, 2^-9 relative).
TEST(CrossEntropy, TiledEqualsFullLogSoftmaxAndItsGradients) {
  const int threads = at::get_num_threads();
  for (const int n : {1, 2})
    for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16})
      for (const int64_t vocab : {int64_t{50}, int64_t{600}})
        for (const int64_t chunk : {int64_t{1}, int64_t{4}, int64_t{14}, int64_t{0}})
          for (const double logit_scale : {1.0, 100.0}) {
            at::set_num_threads(n);
            expect_cross_entropy_equals_fp64(single_rank(), dtype, vocab, chunk, dtype == at::kFloat ? 1e-5 : 1e-2,
                                             fmt::format("threads {}, {}, vocab {}, chunk {}, logits ×{}", n,
                                                         c10::toString(dtype), vocab, chunk, logit_scale),
                                             logit_scale);
          }
  at::set_num_threads(threads);
}

// The loss's gradient scale (loss_grad): against full fp64 logits, 1e-5 of the scale (fp32), loss × 0.5 backward.
// A weight with a gradient buffer holding G0 (the trainer's flat buffer, as over micro-steps): two losses made for
// loss_grad 0.5 before one backward leave G0 + 0.5·(dw₁ + dw₂) in it, and rows past the vocabulary at G0. A weight
// without one: a loss made for 1 is rescaled in backward to the 0.5 it brings (dw and dx). A buffer's loss given
// another gradient than it was made for fails in backward, naming both. A bf16 weight with a bf16 buffer
// (--main_grad_dtype bf16): backward adds the fp32 dw into it itself, rescaled (asked for x's gradient alone,
// the buffer still gets G0 + 0.5·dw, 2e-2 of the scale: bf16 logits' gradient tiles and one rounding of the sum).
TEST(CrossEntropy, LossGradScalesTheGradientsAndFillsTheWeightsBuffer) {
  const int64_t tokens = 38, h = 16, vocab = 600, rows = 602;
  at::manual_seed(5);
  const at::Tensor w0 = at::randn({rows, h}).mul_(0.3), g0 = at::randn({rows, h});
  const at::Tensor x1 = at::randn({tokens, 1, h}), x2 = at::randn({tokens, 1, h}).mul_(3);
  const at::Tensor t1 = at::randint(vocab, {tokens, 1}, at::kLong), t2 = at::randint(vocab, {tokens, 1}, at::kLong);
  const at::Tensor w64 = w0.to(at::kDouble).set_requires_grad(true);
  const at::Tensor x64 = x1.to(at::kDouble).set_requires_grad(true);
  const auto loss64 = [&](const at::Tensor& w, const at::Tensor& x, const at::Tensor& t) {  // w in fp64
    const at::Tensor logits = at::matmul(x.reshape({-1, h}).to(at::kDouble), w.narrow(0, 0, vocab).t());
    return -logits.log_softmax(1).gather(1, t.reshape({-1, 1})).mean();
  };
  ((loss64(w64, x64, t1) + loss64(w64, x2, t2)) * 0.5).backward();

  const at::Tensor w = w0.clone().set_requires_grad(true);
  w.mutable_grad() = g0.clone();
  ((vocab_parallel_cross_entropy(x1, w, t1, vocab, single_rank(), 0, 0.5) +
    vocab_parallel_cross_entropy(x2, w, t2, vocab, single_rank(), 0, 0.5)) *
   0.5)
      .backward();
  EXPECT_TRUE(close_to_scale(w.grad() - g0, w64.grad(), 1e-5)) << "buffer";
  EXPECT_TRUE(at::equal(w.grad().narrow(0, vocab, rows - vocab), g0.narrow(0, vocab, rows - vocab))) << "padding";

  const at::Tensor bare = w0.clone().set_requires_grad(true), x = x1.clone().set_requires_grad(true);
  (vocab_parallel_cross_entropy(x, bare, t1, vocab, single_rank()) * 0.5).backward();
  w64.mutable_grad().zero_(), x64.mutable_grad().zero_();
  (loss64(w64, x64, t1) * 0.5).backward();
  EXPECT_TRUE(close_to_scale(bare.grad(), w64.grad(), 1e-5)) << "no buffer: dw";
  EXPECT_TRUE(close_to_scale(x.grad(), x64.grad(), 1e-5)) << "no buffer: dx";

  const at::Tensor mismatch = vocab_parallel_cross_entropy(x1, w, t1, vocab, single_rank(), 0, 1) * 0.5;
  try {
    mismatch.backward();
    ADD_FAILURE() << "a loss made for loss_grad 1 took a gradient of 0.5";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("added for a loss gradient of 1, but backward brought 0.5"),
              std::string::npos)
        << e.what();
  }

  const at::Tensor w16 = w0.to(at::kBFloat16).set_requires_grad(true), x16 = x1.to(at::kBFloat16);
  const at::Tensor g16 = (g0 * 0.01).to(at::kBFloat16);  // of dw's scale, so that the sum's rounding is too
  w16.mutable_grad() = g16.clone();
  const at::Tensor w16_64 = w16.detach().to(at::kDouble).set_requires_grad(true);
  (loss64(w16_64, x16, t1) * 0.5).backward();
  const at::Tensor x_in = x16.clone().set_requires_grad(true);
  torch::autograd::grad({vocab_parallel_cross_entropy(x_in, w16, t1, vocab, single_rank(), 0, 0.5) * 0.5}, {x_in});
  ASSERT_EQ(w16.grad().scalar_type(), at::kBFloat16);
  EXPECT_TRUE(close_to_scale(w16.grad().to(at::kDouble) - g16.to(at::kDouble), w16_64.grad(), 2e-2)) << "bf16 buffer";
}

// The embedding's gradient: into a bf16 weight's fp32 buffer as its .grad (the trainer's main gradients: only the
// looked-up rows are added to, repeated ids summed in fp32) and, without a buffer, as a dense gradient of the
// weight's dtype; both against the fp64 scatter-add of dy's rows over ids (with repeats and both ends of the
// vocabulary). Tolerances: fp32 sums 1e-6 of the scale; bf16 sums of up to 4 rows, 2^-8 relative each: 2e-2.
TEST(Embedding, GradientAddsLookedUpRowsIntoTheBufferOrIsDense) {
  at::manual_seed(8);
  const int64_t vocab = 11, h = 6;
  const at::Tensor ids = at::tensor({0, 3, 3, 10, 3, 7, 0, 3}, at::kLong).view({4, 2});  // [s, b]
  const at::Tensor dy = at::randn({4, 2, h}).to(at::kBFloat16);
  const at::Tensor before = at::randn({vocab, h});
  at::Tensor ref = at::zeros({vocab, h}, at::kDouble);
  ref.index_add_(0, ids.reshape({-1}), dy.to(at::kDouble).reshape({-1, h}));
  const TensorParallel tp{&Communicator::self(), false};
  const at::Tensor w_init = at::randn({vocab, h}).to(at::kBFloat16);
  const at::Tensor buffered = w_init.clone().set_requires_grad(true);
  buffered.mutable_grad() = before.clone();
  vocab_parallel_embedding(ids, buffered, tp).backward(dy);
  ASSERT_EQ(buffered.grad().scalar_type(), at::kFloat);
  EXPECT_TRUE(close_to_scale(buffered.grad(), before.to(at::kDouble) + ref, 1e-6));
  const at::Tensor dense = w_init.clone().set_requires_grad(true);
  const at::Tensor y = vocab_parallel_embedding(ids, dense, tp);
  EXPECT_TRUE(at::equal(y, w_init.index_select(0, ids.reshape({-1})).view({4, 2, h})));
  y.backward(dy);
  ASSERT_EQ(dense.grad().scalar_type(), at::kBFloat16);
  EXPECT_TRUE(close_to_scale(dense.grad(), ref, 2e-2));
}

TEST(Model, GradientsMatchFiniteDifferencesInDouble) {
  const ModelConfig c = small_config(24, 16, 2);
  Llama model(c, single_rank(), {6, 3, at::kDouble});
  const at::Tensor tokens = random_tokens(2, 6, c.vocab_size, 2);
  const at::Tensor targets = random_tokens(2, 6, c.vocab_size, 3);
  model.loss(tokens, targets).backward();
  const double eps = 1e-6;
  int checked = 0;
  for (Parameter& p : model.parameters()) {
    const at::Tensor flat = p.value.view({-1});
    const at::Tensor grad = p.value.grad().reshape({-1});
    for (int64_t i : {int64_t{0}, flat.numel() / 3, flat.numel() - 1}) {
      c10::AutoGradMode no_grad(false);
      const double original = flat[i].item<double>();
      flat[i].fill_(original + eps);
      const double up = model.loss(tokens, targets).item<double>();
      flat[i].fill_(original - eps);
      const double down = model.loss(tokens, targets).item<double>();
      flat[i].fill_(original);
      const double numeric = (up - down) / (2 * eps), analytic = grad[i].item<double>();
      EXPECT_NEAR(analytic, numeric, 1e-7 + 1e-5 * std::abs(numeric)) << p.name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * static_cast<int>(model.parameters().size()));
}

TEST(Model, LaterTokensDoNotChangeEarlierLogits) {
  const ModelConfig c = small_config();
  const Llama model(c, single_rank(), {12, 5, at::kFloat});
  const at::Tensor tokens = random_tokens(1, 12, c.vocab_size, 4);
  const int64_t t = 6;
  at::Tensor changed = tokens.clone();
  changed[0][t + 1] = (tokens[0][t + 1].item<int64_t>() + 1) % c.vocab_size;
  c10::AutoGradMode no_grad(false);
  const at::Tensor a = model.logits(tokens), b = model.logits(changed);  // [s, 1, V]
  EXPECT_EQ((a.narrow(0, 0, t + 1) - b.narrow(0, 0, t + 1)).abs().max().item<float>(), 0.0f);
  EXPECT_GT((a[t + 1] - b[t + 1]).abs().max().item<float>(), 1e-4f) << "the changed position itself must change";
}

TEST(Model, GroupedQueryAttentionEqualsRepeatedKvHeads) {
  const ModelConfig gqa = small_config();
  ModelConfig mha = gqa;
  mha.num_key_value_heads = gqa.num_attention_heads;
  const Llama a(gqa, single_rank(), {10, 9, at::kFloat});
  Llama b(mha, single_rank(), {10, 9, at::kFloat});
  const int64_t d = gqa.head_dim(), q_rows = gqa.num_attention_heads * d, kv_rows = gqa.num_key_value_heads * d;
  const int64_t rep = gqa.num_attention_heads / gqa.num_key_value_heads;
  c10::AutoGradMode no_grad(false);
  for (size_t i = 0; i < a.parameters().size(); ++i) {
    const at::Tensor src = a.parameters()[i].value;
    at::Tensor dst = b.parameters()[i].value;
    if (a.parameters()[i].name.find("qkv_proj") == std::string::npos) {
      dst.copy_(src);
      continue;
    }
    const auto repeat = [&](int64_t offset) {
      return src.narrow(0, offset, kv_rows).view({gqa.num_key_value_heads, d, -1}).repeat_interleave(rep, 0)
          .reshape({q_rows, -1});
    };
    dst.copy_(at::cat({src.narrow(0, 0, q_rows), repeat(q_rows), repeat(q_rows + kv_rows)}, 0));
  }
  const at::Tensor tokens = random_tokens(2, 10, gqa.vocab_size, 5);
  // Different batched shapes round differently: compare at the logits' scale (measured: 3e-6 of 4.2).
  EXPECT_TRUE(close_to_scale(a.logits(tokens), b.logits(tokens), 1e-5));
}

int64_t heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<int64_t>(m.uordblks + m.hblkhd);
}

// What a forward keeps for backward: flash attention keeps q, k, v, the output and one log-sum-exp per query row,
// never the probabilities [b, heads, s, s] (16 MiB here in fp32; every other activation together is ~3 MiB).
TEST(Model, AttentionKeepsNoProbabilitiesForBackward) {
  ModelConfig c = small_config(96, 32, 2);
  const int64_t batch = 2, seq = 512;
  const at::Tensor tokens = random_tokens(batch, seq, c.vocab_size, 6);
  const at::Tensor targets = random_tokens(batch, seq, c.vocab_size, 7);
  Llama model(c, single_rank(), {seq, 11, at::kFloat});
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "heap accounting (mallinfo2) is not meaningful under AddressSanitizer";
#endif
  model.loss(tokens, targets);  // once first: kernels' cached primitives and scratch are not saved activations
  const int64_t before = heap_in_use();
  const at::Tensor loss = model.loss(tokens, targets);
  const int64_t saved_bytes = heap_in_use() - before;
  const int64_t probs_bytes = c.num_hidden_layers * batch * c.num_attention_heads * seq * seq * 4;
  EXPECT_LT(saved_bytes, probs_bytes / 4) << "saved " << saved_bytes << " B; probabilities " << probs_bytes << " B";
}

}  // namespace
}  // namespace llama2::testing
