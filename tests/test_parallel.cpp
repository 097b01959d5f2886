// Tensor, sequence and data parallelism against single-process runs of the same seed, and ZeRO-1
// against unsharded AdamW. Runs under `mpirun -np 2` (tp=2 or dp=2) and `-np 4` (tp=2 × dp=2).
#include <ATen/ATen.h>

#include "llama2/data/synthetic.h"
#include "llama2/optim/adamw.h"
#include "test_support.h"

namespace llama2::testing {
namespace {


// The tiled loss at tp=2 (each rank half the vocabulary, the statistics reduced over TP) against fp64 log_softmax of
// the full logits; tolerances as at tp=1 (test_model.cpp).
TEST(CrossEntropy, TiledAtTp2EqualsFullLogSoftmaxAndItsGradients) {
  context().set_tensor_parallel(2, 1);
  const TensorParallel tp{&context().tp(), false};
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16})
    for (const int64_t vocab : {int64_t{50}, int64_t{600}})
      for (const int64_t chunk : {int64_t{4}, int64_t{0}})
        expect_cross_entropy_equals_fp64(tp, dtype, vocab, chunk, dtype == at::kFloat ? 1e-5 : 1e-2,
                                         std::string(c10::toString(dtype)) + ", vocab " + std::to_string(vocab) +
                                             ", chunk " + std::to_string(chunk));
}

class TensorParallelism : public ::testing::TestWithParam<bool> {};

TEST_P(TensorParallelism, LogitsLossAndGradientsEqualOneProcess) {
  context().set_tensor_parallel(2, 1);
  const Communicator& tp = context().tp();
  ModelConfig c = small_config(97, 32, 2);  // vocab 97: padded to 98 over tp=2, padding masked
  c.sequence_parallel_enabled = GetParam();
  const int64_t seq = 8, batch = 2;
  const at::Tensor tokens = random_tokens(batch, seq, c.vocab_size, 21);
  const at::Tensor targets = random_tokens(batch, seq, c.vocab_size, 22);
  const Llama full(c, single_rank(), {seq, 5, at::kFloat});
  const Llama part(c, {&tp, GetParam()}, {seq, 5, at::kFloat});

  const at::Tensor full_loss = full.loss(tokens, targets), part_loss = part.loss(tokens, targets);
  EXPECT_TRUE(all_close(part_loss, full_loss, 1e-5, 0));
  const ShardSpec vocab_cols{2, {c.vocab_size}, c.padded_vocab_size(tp.size())};
  EXPECT_TRUE(close_to_scale(part.logits(tokens).detach(),
                             shard(full.logits(tokens).detach(), vocab_cols, tp.size(), tp.rank()), 1e-5));

  full_loss.backward();
  part_loss.backward();
  for (size_t i = 0; i < full.parameters().size(); ++i) {
    const Parameter& p = part.parameters()[i];
    at::Tensor grad = p.value.grad().clone();
    if (p.is_norm && GetParam()) tp.all_reduce(grad);  // SP: each rank saw s/tp positions
    const at::Tensor expected = shard(full.parameters()[i].value.grad(), p.spec, tp.size(), tp.rank());
    EXPECT_TRUE(close_to_scale(grad, expected, 1e-5)) << p.name;
  }
}

INSTANTIATE_TEST_SUITE_P(SequenceParallel, TensorParallelism, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "SpOn" : "SpOff"; });

// The tp group of this run: 2 on 4 ranks (so dp=2 remains), 1 on 2 ranks.
int data_parallel_layout() {
  context().set_tensor_parallel(context().world().size() >= 4 ? 2 : 1, 1);
  return context().dp().size();
}

struct TrainingRun {
  Llama model;
  ShardedAdamW optimizer;
  TrainingRun(const ModelConfig& c, const Communicator& tp, const Communicator& dp, bool zero_1, int64_t seq,
              at::ScalarType dtype = at::kFloat)
      : model(c, {&tp, c.sequence_parallel_enabled && tp.size() > 1}, {seq, 3, dtype}),
        optimizer(model.parameters(), tp, dp, [&] {
          AdamWOptions o;
          o.zero_1 = zero_1;
          o.sequence_parallel = c.sequence_parallel_enabled && tp.size() > 1;
          o.max_grad_norm = 0.5;  // small enough to clip: clipping must agree too
          return o;
        }()) {}

  // One optimizer step over `micro_batches` accumulation micro-steps of `data`; returns this rank's loss.
  double micro_steps(const SyntheticData& data, int64_t step, int64_t dp_rank, int64_t dp, int64_t accum,
                     int64_t batch, int64_t seq) {
    optimizer.zero_grad();
    double loss = 0;
    for (int64_t u = 0; u < accum; ++u) {
      const at::Tensor b = data.samples(first_sample(step, u, dp_rank, batch, accum, dp), batch);
      const double share = 1.0 / static_cast<double>(accum);  // of the step's mean loss, as the trainer divides it
      const at::Tensor l = model.loss(b.narrow(1, 0, seq), b.narrow(1, 1, seq), share) / static_cast<double>(accum);
      l.backward();
      loss += l.item<double>();
    }
    return loss;
  }
};

// fp32, and bf16 with fp32 main gradients (the DP sum of fp32 gradients vs their accumulation in one process).
class DataParallelism : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(DataParallelism, AveragedGradientsEqualOneProcessSeeingAllMicroBatches) {
  const int64_t dp = data_parallel_layout(), dp_rank = context().dp().rank(), seq = 8, batch = 2;
  const ModelConfig c = small_config(97, 32, 2);
  const SyntheticData data(c.vocab_size, seq, 17, "bigram");
  TrainingRun distributed(c, context().tp(), context().dp(), true, seq, GetParam());
  TrainingRun reference(c, context().tp(), Communicator::self(), true, seq, GetParam());
  distributed.micro_steps(data, 0, dp_rank, dp, 1, batch, seq);
  reference.micro_steps(data, 0, 0, 1, dp, batch, seq);  // the same global batch as `dp` micro-steps
  const at::Tensor mine = distributed.optimizer.reduce_gradients();
  const at::Tensor all = reference.optimizer.reduce_gradients();
  EXPECT_TRUE(close_to_scale(mine, all.narrow(0, distributed.optimizer.shard_offset(), mine.size(0)), 1e-6));
}

INSTANTIATE_TEST_SUITE_P(Precision, DataParallelism, ::testing::Values(at::kFloat, at::kBFloat16),
                         [](const auto& info) { return std::string(info.param == at::kFloat ? "Fp32" : "Bf16"); });

class ZeroOne : public ::testing::TestWithParam<bool> {};

TEST_P(ZeroOne, TenStepsEqualUnshardedAdamWInOneProcess) {
  const int64_t dp = data_parallel_layout(), dp_rank = context().dp().rank(), seq = 8, batch = 2;
  const ModelConfig c = small_config(97, 32, 2);
  const SyntheticData data(c.vocab_size, seq, 19, "bigram");
  TrainingRun distributed(c, context().tp(), context().dp(), GetParam(), seq);
  TrainingRun reference(c, context().tp(), Communicator::self(), false, seq);
  for (int64_t step = 0; step < 10; ++step) {
    at::Tensor loss = at::full({1}, distributed.micro_steps(data, step, dp_rank, dp, 1, batch, seq), at::kDouble);
    context().dp().all_reduce(loss);
    const double ref_loss = reference.micro_steps(data, step, 0, 1, dp, batch, seq);
    EXPECT_NEAR(loss.item<double>() / dp, ref_loss, 1e-6 * ref_loss) << "step " << step;
    const StepResult a = distributed.optimizer.step(1e-3), b = reference.optimizer.step(1e-3);
    EXPECT_NEAR(a.grad_norm, b.grad_norm, 1e-6 * b.grad_norm) << "step " << step;
  }
  for (size_t i = 0; i < reference.model.parameters().size(); ++i)
    EXPECT_TRUE(all_close(distributed.model.parameters()[i].value, reference.model.parameters()[i].value, 1e-6, 1e-7))
        << reference.model.parameters()[i].name;
}

TEST(ZeroOne, OptimizerStateBytesAreTwelvePerParamOverDpInMixedPrecision) {
  const int64_t dp = data_parallel_layout();
  const ModelConfig c = small_config(97, 32, 2);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    Llama model(c, {&context().tp(), false}, {8, 3, dtype});
    // By hand, h 32, ffn 48, 4 heads / 2 kv heads of d 8: per layer qkv 64·32, o 32·32, gate/up 96·32, down 48·32,
    // norms 2·32 = 7,744; × 2 layers + embedding and lm_head 2·97·32 + final norm 32 = 21,728 parameters. At tp 2
    // each rank holds half of every projection, 49 of the 98 padded vocabulary rows and all norms: 2·3,904 + 2·49·32
    // + 32 = 10,976.
    const int64_t local = context().tp().size() == 1 ? 21728 : 10976;
    ShardedAdamW optimizer(model.parameters(), context().tp(), context().dp(), AdamWOptions{});
    const int64_t per_param = dtype == at::kBFloat16 ? 12 : 8;  // fp32: the params are the master copy
    const int64_t expected = per_param * ((local + dp - 1) / dp);
    if (context().world().rank() == 0)
      std::printf("optimizer state per rank (%s): %lld bytes measured, %lld = %lld x ceil(%lld params / dp %lld)\n",
                  dtype == at::kFloat ? "fp32" : "bf16", static_cast<long long>(optimizer.state_bytes()),
                  static_cast<long long>(expected), static_cast<long long>(per_param), static_cast<long long>(local),
                  static_cast<long long>(dp));
    EXPECT_EQ(optimizer.state_bytes(), expected);
  }
}

TEST(Clipping, GlobalNormCountsReplicatedNormWeightsOnce) {
  context().set_tensor_parallel(2, 1);
  ModelConfig c = small_config(97, 32, 2);
  c.tie_word_embeddings = true;
  for (const bool sp : {false, true}) {
    Llama model(c, {&context().tp(), sp}, {8, 3, at::kFloat});
    AdamWOptions o;
    o.sequence_parallel = sp;
    ShardedAdamW optimizer(model.parameters(), context().tp(), context().dp(), o);
    for (Parameter& p : model.parameters()) p.value.mutable_grad().fill_(0.5);  // same on every rank
    // By hand: every sharded element of the full model (vocab padded to 98 rows) once, norms once:
    // embed 98·32, per layer qkv (4+2+2)·8·32 + o 32·32 + gate/up/down 3·48·32; norms 2·32 per layer + 32.
    // With SP each TP rank's norm gradient is a partial sum: the two halves add up to 1.0.
    const double sharded = 98 * 32 + 2 * (8 * 8 * 32 + 32 * 32 + 3 * 48 * 32), norms = 2 * 2 * 32 + 32;
    const double norm_grad = sp ? 1.0 : 0.5;
    const double expected = std::sqrt(sharded * 0.25 + norms * norm_grad * norm_grad);
    const StepResult r = optimizer.step(1e-3);
    EXPECT_NEAR(r.grad_norm, expected, 1e-9 * expected) << "sequence parallel " << sp;
    EXPECT_TRUE(r.applied);
  }
}

INSTANTIATE_TEST_SUITE_P(Sharding, ZeroOne, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Zero1On" : "Zero1Off"; });

}  // namespace
}  // namespace llama2::testing
