// A 2-rank job where rank 1 throws while rank 0 waits in a collective that rank 1 never joins.
// run_on_all_ranks must end the whole job with a non-zero status and a line naming rank 1.
#include "llama2/dist/communicator.h"
#include "llama2/util/errors.h"

int main(int argc, char** argv) {
  return llama2::run_on_all_ranks(&argc, &argv, [](llama2::DistributedContext& dist) {
    if (dist.world().rank() == 1) throw llama2::RuntimeFailure("injected failure");
    dist.world().barrier();  // would hang forever without the abort
    return 0;
  });
}
