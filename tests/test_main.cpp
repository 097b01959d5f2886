// gtest main for every test binary: MPI up for the whole run (single-process tests use MPI_COMM_SELF),
// and a job-wide verdict so that all ranks of a multi-rank test exit with the same status.
#include <mpi.h>

#include <gtest/gtest.h>

#include "test_support.h"

namespace llama2::testing {
DistributedContext* g_context = nullptr;
DistributedContext& context() { return *g_context; }
}  // namespace llama2::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  llama2::DistributedContext context(&argc, &argv);
  llama2::testing::g_context = &context;
  if (context.world().rank() != 0) {  // one report per job
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return failed;
}
