// The training loop's reports against values computed another way: the straggler line by hand, the validation loss
// by the unfused fp64 reference model on the same windows.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "llama2/config/train_options.h"
#include "llama2/data/data_sources.h"
#include "llama2/dist/status_board.h"
#include "llama2/train/straggler.h"
#include "reference_llama.h"
#include "test_support.h"

namespace llama2::testing {
namespace {

// Named above 20% and 50 ms slower than the fastest rank; the shares and times as printed, by hand.
TEST(Straggler, NamedOnlyBeyondTheShareAndTheJitter) {
  ComputeSpread spread;
  spread.fastest_rank = 3;
  spread.slowest_rank = 1;
  spread.min_s = 1.0;
  spread.max_s = 1.5;
  EXPECT_EQ(spread.straggler(), "straggler: rank 1 computed for 1.500 s this step, the fastest (rank 3) for 1.000 s: "
                                "50% slower");
  spread.max_s = 1.19;  // 19% slower
  EXPECT_EQ(spread.straggler(), "");
  spread.min_s = 0.010;  // 400% slower but 40 ms: jitter
  spread.max_s = 0.050;
  EXPECT_EQ(spread.straggler(), "");
}

// A row as rank `rank` would send it, with its round trip to its nearest other node.
RankStatus row_with_rtt(int rank, double rtt_s) {
  RankStatus row;
  row.world_rank = rank;
  row.link_rtt_s = rtt_s;
  return row;
}

// Three nodes of two ranks, as rank 0 hears them: node b's ranks measure 120 and 90 ms, the others 0.3-0.5 ms (the
// median node: 0.5 ms, a's slowest rank). Named by host and ranks, with its slowest rank's round trip; not named
// under 20 ms or under 5 times the median node's.
TEST(SlowLink, TheNodeBehindItNamedAmongThree) {
  StatusBoard board(0, {"a", "a", "b", "b", "c", "c"}, 1);
  board.set_link_rtt(0.0003);
  const double rtts[] = {0, 0.0005, 0.120, 0.090, 0.0004, 0.0003};
  for (int r = 1; r < 6; ++r) board.heard(row_with_rtt(r, rtts[r]));
  EXPECT_EQ(link_spread(board).slow_link(), "slow link: host b (ranks 2, 3): 120.0 ms round trip to its nearest other node, 0.5 ms "
                              "for the median node; the job's collectives wait on its network");
  board.heard(row_with_rtt(2, 0.004));  // 4 ms, 8x the median but under 20 ms: not named
  board.heard(row_with_rtt(3, 0.004));
  EXPECT_EQ(link_spread(board).slow_link(), "");
  for (int r : {1, 4}) board.heard(row_with_rtt(r, 0.006));
  board.heard(row_with_rtt(2, 0.025));  // 25 ms but 4.2x the median node's 6 ms: not named
  EXPECT_EQ(link_spread(board).slow_link(), "");
}

// Two nodes: the link between them, over 20 ms only; one node: nothing to compare.
TEST(SlowLink, TwoNodesNameTheLinkOneNodeNothing) {
  StatusBoard two(0, {"a", "b"}, 1);
  two.set_link_rtt(0.050);
  two.heard(row_with_rtt(1, 0.048));
  EXPECT_EQ(link_spread(two).slow_link(), "slow link between hosts a and b: 50.0 ms round trip (with 2 nodes, which end is slow "
                            "cannot be told)");
  two.set_link_rtt(0.019);
  two.heard(row_with_rtt(1, 0.019));
  EXPECT_EQ(link_spread(two).slow_link(), "");
  StatusBoard one(0, {"a", "a"}, 2);
  one.set_link_rtt(1.0);
  EXPECT_EQ(link_spread(one).slow_link(), "");
}

// `train --lr 0 --eval_interval 1` on synthetic data: the weights after step 1 are the initial ones, so its validation
// loss is the initial model's mean loss over the validation windows it names (global samples offset + k·4
// .. + 3 for k < eval_iters). The reference: the same seed's tp=1 weights (rounded to bf16 for a bf16 run), unfused
// and in fp64, through the reference model, log-softmax of full logits. Tolerance: 1e-5 relative for fp32; 1e-4 for
// bf16 (measured 4.7e-6 on the 2-core AMD EPYC VM: the fresh model's near-uniform softmax averages the bf16
// roundings of activations away; a wrong layer or layout moves it by far more).
class Evaluate : public ::testing::TestWithParam<bool> {};

TEST_P(Evaluate, ValidationLossEqualsTheFp64ReferenceOnTheSameWindows) {
  const bool bf16 = GetParam();
  namespace fs = std::filesystem;
  const fs::path out = fs::temp_directory_path() / ("llama2_val_" + std::to_string(::getpid()));
  fs::remove_all(out);
  TrainOptions o;
  o.config_path = std::string(LLAMA2_SOURCE_DIR) + "/configs/tiny.json";
  o.synthetic_data = true;
  o.seq_len = 16;
  o.batch_size = 4;
  o.eval_interval = 1;
  o.eval_iters = 2;
  const std::string command = fmt::format(
      "{} train --config {} --synthetic_data --seq_len {} --batch_size {} --max_steps 1 --lr 0 --eval_interval 1 "
      "--eval_iters {} --seed {} --use_mix_precision={} --output_dir {} > {}/log 2>&1",
      LLAMA2_BINARY, o.config_path, o.seq_len, o.batch_size, o.eval_iters, o.seed, bf16, out.string(),
      out.parent_path().string());
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream metrics(out / "metrics.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(metrics, line));
  const double val_loss = nlohmann::json::parse(line).at("val_loss").get<double>();

  const ModelConfig c = load_model_config(o.config_path);
  const Llama model(c, single_rank(), {o.seq_len, o.seed, bf16 ? at::kBFloat16 : at::kFloat});
  Weights weights = unfused_weights(model);
  for (auto& [name, w] : weights) w = w.to(at::kDouble);
  const DataSources data = open_data(c, o, o.batch_size);
  double sum = 0;
  for (int64_t k = 0; k < o.eval_iters; ++k) {
    const ValidationSet& set = data.validation.front();
    const at::Tensor batch = set.samples->samples(set.offset + k * o.batch_size, o.batch_size);
    const at::Tensor logits = reference_logits(c, weights, batch.narrow(1, 0, o.seq_len));  // [b, s, V]
    const at::Tensor targets = batch.narrow(1, 1, o.seq_len).reshape({-1, 1});
    sum -= logits.reshape({-1, c.vocab_size}).log_softmax(1).gather(1, targets).mean().item<double>();
  }
  const double reference = sum / static_cast<double>(o.eval_iters);
  std::printf("%s validation loss %.7f, fp64 reference %.7f (relative difference %.2e)\n", bf16 ? "bf16" : "fp32",
              val_loss, reference, std::abs(val_loss - reference) / reference);
  EXPECT_NEAR(val_loss, reference, (bf16 ? 1e-4 : 1e-5) * reference);
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Precisions, Evaluate, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "Bf16" : "Fp32"; });

}  // namespace
}  // namespace llama2::testing
