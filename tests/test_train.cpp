// The training loop's reports, by hand: the straggler line.
#include "llama2/train/straggler.h"
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

}  // namespace
}  // namespace llama2::testing
