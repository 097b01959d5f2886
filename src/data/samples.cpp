// Which global samples each (dp rank, micro-step) of a step takes.
#include "llama2/data/samples.h"

namespace llama2 {

int64_t first_sample(int64_t step, int64_t micro_step, int64_t dp_rank, int64_t batch, int64_t accum, int64_t dp) {
  return step * batch * accum * dp + (dp_rank * accum + micro_step) * batch;
}

}  // namespace llama2
