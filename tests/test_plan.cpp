// Parameter count and FLOPs per token against numbers computed by hand from the Llama-2 shapes.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <ATen/Parallel.h>

#include "llama2/config/config.h"
#include "llama2/plan/plan.h"
#include "llama2/plan/rate_cache.h"
#include "test_support.h"

namespace llama2::testing {
namespace {

ModelConfig config_file(const std::string& name) { return load_model_config(std::string(LLAMA2_SOURCE_DIR) + "/configs/" + name); }

TEST(Plan, Llama2_7bParameterCountAndFlops) {
  const ModelConfig c = config_file("llama2-7b.json");
  // embed 32000·4096 = 131,072,000; per layer: qkv 3·4096² = 50,331,648, o 16,777,216,
  // gate/up/down 3·11008·4096 = 135,266,304, norms 8,192 → 202,383,360; × 32 = 6,476,267,520;
  // final norm 4,096; lm_head 131,072,000.
  EXPECT_EQ(parameter_count(c), int64_t{6738415616});
  EXPECT_EQ(embedding_parameter_count(c), int64_t{131072000});
  // 6·(6,738,415,616 − 131,072,000) + 12·32·4096·4096 = 39,644,061,696 + 6,442,450,944
  EXPECT_DOUBLE_EQ(flops_per_token(c, 4096), 46086512640.0);
  EXPECT_DOUBLE_EQ(flops_per_token(c, 2048), 39644061696.0 + 3221225472.0);
}

TEST(Plan, Llama2_58mParameterCount) {
  const ModelConfig c = config_file("llama2-58m.json");
  // 2·32000·512 + 8·(4·512² + 3·1376·512 + 2·512) + 512
  EXPECT_EQ(parameter_count(c), int64_t{32768000 + 8 * (1048576 + 2113536 + 1024) + 512});
}

// 58,073,600 parameters (above): 8 bytes each in fp32 (exp_avg, exp_avg_sq), over dp 2 with ZeRO-1 29,036,800 each;
// 12 bytes with bf16's fp32 master.
TEST(Plan, OptimizerStateIsShardedOverDp) {
  const ModelConfig c = config_file("llama2-58m.json");
  EXPECT_EQ(plan_memory(c, {1, 1, 4, 512, false, true}).optimizer_bytes, int64_t{464588800});
  EXPECT_EQ(plan_memory(c, {1, 2, 4, 512, false, true}).optimizer_bytes, int64_t{232294400});
  EXPECT_EQ(plan_memory(c, {1, 2, 4, 512, true, true}).optimizer_bytes, int64_t{348441600});
}

// Gradients and the DP reduction's buffers, by hand: fp32 main gradients (4 bytes/param, the ZeRO-1 shard received
// in fp32) or bf16 gradients (2 bytes/param, the shard received in bf16 and widened to fp32).
TEST(Plan, GradientBytesFollowTheMainGradientDtype) {
  const ModelConfig c = config_file("llama2-58m.json");
  const MemoryPlan main_fp32 = plan_memory(c, {1, 2, 4, 512, true, true, true});
  const MemoryPlan bf16 = plan_memory(c, {1, 2, 4, 512, true, true, false});
  const int64_t n = main_fp32.local_params, shard = (n + 1) / 2;
  EXPECT_EQ(main_fp32.grad_bytes, 4 * n);
  EXPECT_EQ(main_fp32.reduce_bytes, 4 * shard);
  EXPECT_EQ(bf16.grad_bytes, 2 * n);
  EXPECT_EQ(bf16.reduce_bytes, 2 * shard + 4 * shard);
  const MemoryPlan bf16_replicated = plan_memory(c, {1, 2, 4, 512, true, false, false});
  EXPECT_EQ(bf16_replicated.reduce_bytes, 4 * n);  // all-reduced in place, then widened whole
}

// --pack_weights: at most two copies (forward, data gradient) of every GEMM weight, by hand for the 58M model in bf16:
// per layer qkv 3·h·h, o h·h, gate/up 2·i·h, down i·h; the lm_head V·h; not the norms or the input embedding.
TEST(Plan, PackedWeightsAreTwoCopiesOfTheGemmWeights) {
  const ModelConfig c = config_file("llama2-58m.json");
  const int64_t h = 512, i = 1376, layers = 8, vocab = 32000;
  MemoryPlanInput in{1, 1, 4, 512, true, true, true, false};
  const MemoryPlan plain = plan_memory(c, in);
  in.packed_weights = true;
  const MemoryPlan packed = plan_memory(c, in);
  EXPECT_EQ(plain.packed_bytes, 0);
  EXPECT_EQ(packed.packed_bytes, 2 * 2 * (layers * (4 * h * h + 3 * i * h) + vocab * h));
  EXPECT_EQ(packed.total() - plain.total(), packed.packed_bytes);
}

// The step estimate's GEMM and loss terms by hand, 58M model, tp 2, micro-batch 4 × 512 (2048 tokens), 3
// micro-steps: the projections (per layer qkv 512→768, o 256→512, gate/up 512→1376, down 688→512 on a rank) at
// 6·m·k·n FLOPs each (forward, data and weight gradient) over the GEMM rate; the fused loss's lm_head FLOPs
// (6·2048·512·16000) over the loss's own measured rate, not the GEMM rate.
TEST(Plan, StepEstimateDividesTheProjectionsAndTheLossByTheirOwnRates) {
  const ModelConfig c = config_file("llama2-58m.json");
  MachineRates r;
  r.gemm_flops = r.peak_flops = 2e11;
  r.loss_flops = 1.5e11;
  r.attention_flops = 1e11;
  r.memory_bytes_per_s = r.intra_node_bytes_per_s = 4e10;
  const StepEstimate e = estimate_step(c, {2, 1, 4, 512, false, true}, {3, 1, 2, true}, r);
  const double projections = 8 * 6.0 * 2048 * (512 * 768 + 256 * 512 + 512 * 1376 + 688 * 512);
  EXPECT_DOUBLE_EQ(e.gemm, 3 * projections / 2e11);
  EXPECT_DOUBLE_EQ(e.loss, 3 * 6.0 * 2048 * 512 * 16000 / 1.5e11);
}

// The rate cache: a rate is measured once per machine identity (here: the thread count is part of it), read back
// after, measured again with remeasure, and a damaged file costs only a measurement. Counts by hand.
TEST(RateCache, MeasuresOncePerMachineAndAgainOnRemeasure) {
  const std::string dir = ::testing::TempDir() + "rate_cache_test";
  std::filesystem::remove_all(dir);
  const char* old_xdg = std::getenv("XDG_CACHE_HOME");
  const std::string saved = old_xdg != nullptr ? old_xdg : "";
  ::setenv("XDG_CACHE_HOME", dir.c_str(), 1);
  const int threads = at::get_num_threads();
  int calls = 0;
  const auto measure = [&] { return 100.0 + ++calls; };
  EXPECT_EQ(cached_rate("gemm 8x8x8 fp32", false, measure), 101.0);
  EXPECT_EQ(cached_rate("gemm 8x8x8 fp32", false, measure), 101.0);  // from the file
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(cached_rate("gemm 8x8x8 bf16", false, measure), 102.0);  // another key
  EXPECT_EQ(cached_rate("gemm 8x8x8 fp32", true, measure), 103.0);   // remeasure, and stored
  EXPECT_EQ(cached_rate("gemm 8x8x8 fp32", false, measure), 103.0);
  EXPECT_EQ(rate_cache_path().rfind(dir + "/llama2_pretrain/rates-", 0), 0u) << rate_cache_path();
  std::ofstream(rate_cache_path()) << "{ damaged";
  EXPECT_EQ(cached_rate("gemm 8x8x8 fp32", false, measure), 104.0);
  at::set_num_threads(threads + 1);  // another machine identity: its own file
  EXPECT_EQ(cached_rate("gemm 8x8x8 fp32", false, measure), 105.0);
  at::set_num_threads(threads);
  EXPECT_EQ(cached_rate("gemm 8x8x8 fp32", false, measure), 104.0);
  EXPECT_EQ(calls, 5);
  if (old_xdg != nullptr) ::setenv("XDG_CACHE_HOME", saved.c_str(), 1);
  else ::unsetenv("XDG_CACHE_HOME");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace llama2::testing
