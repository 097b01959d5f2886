// The single-process model against an independent unfused reference, finite differences, causality,
// GQA ≡ repeated-kv MHA, selective checkpointing.
#include <malloc.h>

#include <cmath>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "llama2/model/attention.h"
#include "llama2/model/llama.h"
#include "llama2/parallel/layers.h"
#include "reference_llama.h"
#include "test_support.h"

namespace llama2::testing {
namespace {

TensorParallel single() { return {&Communicator::self(), false}; }

// The model's fused tp=1 parameters, unfused into Hugging Face names and shapes.
Weights unfused_weights(const Llama& model) {
  const ModelConfig& c = model.config();
  const int64_t q_rows = c.num_attention_heads * c.head_dim(), kv_rows = c.num_key_value_heads * c.head_dim();
  Weights w;
  for (const Parameter& p : model.parameters()) {
    const at::Tensor v = p.value.detach();
    const std::string base = p.name.substr(0, p.name.rfind('.', p.name.size() - 8) + 1);
    if (p.name.find("qkv_proj") != std::string::npos) {
      w[base + "q_proj.weight"] = v.narrow(0, 0, q_rows);
      w[base + "k_proj.weight"] = v.narrow(0, q_rows, kv_rows);
      w[base + "v_proj.weight"] = v.narrow(0, q_rows + kv_rows, kv_rows);
    } else if (p.name.find("gate_up_proj") != std::string::npos) {
      w[base + "gate_proj.weight"] = v.narrow(0, 0, c.intermediate_size);
      w[base + "up_proj.weight"] = v.narrow(0, c.intermediate_size, c.intermediate_size);
    } else {
      w[p.name] = v;
    }
  }
  return w;
}

at::Tensor batch_major(const at::Tensor& logits) { return logits.permute({1, 0, 2}); }  // [s,b,V] → [b,s,V]

TEST(Model, FusedLogitsEqualUnfusedReference) {
  for (bool tied : {false, true}) {
    ModelConfig c = small_config();
    c.tie_word_embeddings = tied;
    const Llama model(c, single(), {16, 7, false, at::kFloat});
    const at::Tensor tokens = random_tokens(2, 16, c.vocab_size, 1);
    c10::AutoGradMode no_grad(false);
    const at::Tensor ours = batch_major(model.logits(tokens));
    const at::Tensor ref = reference_logits(c, unfused_weights(model), tokens);
    EXPECT_TRUE(all_close(ours, ref, 1e-5, 1e-5)) << "tie_word_embeddings=" << tied;
  }
}

// Core attention in causal blocks (s = 300: blocks of 128, 128, 44 rows) with GQA, probabilities kept and
// recomputed, against softmax(q·kᵀ/√d + mask)·v over full rows with repeated kv heads in fp64 and libtorch
// autograd. Tolerance: fp32 rounding, 1e-5.
TEST(Attention, CausalBlocksEqualFullMaskedSoftmaxAndItsGradients) {
  const int64_t s = 300, b = 2, nq = 4, nkv = 2, d = 16;
  at::manual_seed(5);
  const at::Tensor mask = causal_mask(s);
  for (const bool recompute : {false, true}) {
    const at::Tensor q = at::randn({s, b, nq, d}).set_requires_grad(true);
    const at::Tensor k = at::randn({s, b, nkv, d}).set_requires_grad(true);
    const at::Tensor v = at::randn({s, b, nkv, d}).set_requires_grad(true);
    const at::Tensor d_out = at::randn({s, b, nq * d});
    const at::Tensor out = core_attention(q, k, v, mask, recompute);
    out.backward(d_out);

    const auto f64 = [](const at::Tensor& t) { return t.detach().to(at::kDouble).set_requires_grad(true); };
    const at::Tensor q64 = f64(q), k64 = f64(k), v64 = f64(v);
    const auto heads = [&](const at::Tensor& t) {  // [s, b, n, d] → [b, nq, s, d], kv heads repeated
      return t.permute({1, 2, 0, 3}).repeat_interleave(nq / t.size(2), 1);
    };
    const at::Tensor scores = at::matmul(heads(q64), heads(k64).transpose(-1, -2)) / std::sqrt(double(d)) +
                              mask.to(at::kDouble);
    const at::Tensor ref = at::matmul(scores.softmax(-1), heads(v64)).permute({2, 0, 1, 3}).reshape({s, b, nq * d});
    ref.backward(d_out.to(at::kDouble));
    EXPECT_TRUE(all_close(out, ref.to(at::kFloat), 1e-5, 1e-5)) << "recompute " << recompute;
    EXPECT_TRUE(all_close(q.grad(), q64.grad().to(at::kFloat), 1e-5, 1e-5)) << "recompute " << recompute;
    EXPECT_TRUE(all_close(k.grad(), k64.grad().to(at::kFloat), 1e-5, 1e-5)) << "recompute " << recompute;
    EXPECT_TRUE(all_close(v.grad(), v64.grad().to(at::kFloat), 1e-5, 1e-5)) << "recompute " << recompute;
  }
}

// The fused, chunked loss against log_softmax of full fp64 logits (libtorch autograd), for chunks that do and
// do not divide the tokens, with padding vocab rows. Tolerance: fp32 rounding, 1e-5 relative.
TEST(CrossEntropy, FusedChunkedEqualsFullLogSoftmaxAndItsGradients) {
  const int64_t s = 7, b = 2, h = 16, vocab = 50, padded = 52;
  at::manual_seed(3);
  for (const int64_t chunk : {int64_t{1}, int64_t{4}, int64_t{14}, int64_t{0}}) {
    const at::Tensor x = at::randn({s, b, h}).set_requires_grad(true);
    const at::Tensor w = at::randn({padded, h}).mul_(0.3).set_requires_grad(true);
    const at::Tensor targets = at::randint(vocab, {s, b}, at::kLong);
    const at::Tensor loss = vocab_parallel_cross_entropy(x, w, targets, vocab, single(), chunk);
    loss.backward();

    const at::Tensor x64 = x.detach().to(at::kDouble).set_requires_grad(true);
    const at::Tensor w64 = w.detach().to(at::kDouble).set_requires_grad(true);
    const at::Tensor logits = at::matmul(x64.reshape({-1, h}), w64.narrow(0, 0, vocab).t());  // [s·b, V]
    const at::Tensor ref = -logits.log_softmax(1).gather(1, targets.reshape({-1, 1})).mean();
    ref.backward();
    EXPECT_NEAR(loss.item<double>(), ref.item<double>(), 1e-5 * ref.item<double>()) << "chunk " << chunk;
    EXPECT_TRUE(all_close(x.grad(), x64.grad().to(at::kFloat), 1e-5, 1e-6)) << "chunk " << chunk;
    EXPECT_TRUE(all_close(w.grad(), w64.grad().to(at::kFloat), 1e-5, 1e-6)) << "chunk " << chunk;
    EXPECT_EQ(w.grad().narrow(0, vocab, padded - vocab).abs().max().item<float>(), 0.0f) << "padding rows";
  }
}

TEST(Model, GradientsMatchFiniteDifferencesInDouble) {
  const ModelConfig c = small_config(24, 16, 2);
  Llama model(c, single(), {6, 3, true, at::kDouble});
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
  const Llama model(c, single(), {12, 5, false, at::kFloat});
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
  const Llama a(gqa, single(), {10, 9, false, at::kFloat});
  Llama b(mha, single(), {10, 9, false, at::kFloat});
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

TEST(Model, SelectiveCheckpointGivesSameGradientsWithLessSavedMemory) {
  ModelConfig c = small_config(96, 32, 2);
  const int64_t batch = 2, seq = 128;
  const at::Tensor tokens = random_tokens(batch, seq, c.vocab_size, 6);
  const at::Tensor targets = random_tokens(batch, seq, c.vocab_size, 7);
  std::vector<at::Tensor> grads[2];
  int64_t saved_bytes[2];
  for (int recompute = 0; recompute < 2; ++recompute) {
    Llama model(c, single(), {seq, 11, recompute == 1, at::kFloat});
    const int64_t before = heap_in_use();
    at::Tensor loss = model.loss(tokens, targets);
    saved_bytes[recompute] = heap_in_use() - before;
    loss.backward();
    for (const Parameter& p : model.parameters()) grads[recompute].push_back(p.value.grad().clone());
  }
  for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_TRUE(all_close(grads[1][i], grads[0][i], 1e-6, 1e-9)) << i;
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "gradients checked; heap accounting (mallinfo2) is not meaningful under AddressSanitizer";
#endif
  // Without recompute each layer keeps its probabilities [b, heads, s, s] in fp32.
  const int64_t probs_bytes = c.num_hidden_layers * batch * c.num_attention_heads * seq * seq * 4;
  EXPECT_GE(saved_bytes[0] - saved_bytes[1], probs_bytes * 9 / 10)
      << "saved without recompute " << saved_bytes[0] << " B, with " << saved_bytes[1] << " B";
}

}  // namespace
}  // namespace llama2::testing
