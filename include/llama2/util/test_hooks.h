// Owns the faults that tests inject through the environment: LLAMA2_TEST_HOOKS="hook=value;..." is read once; unset
// (production) every hook is off. Each hook names the world rank it acts on, so one rank of a job misbehaves.
#pragma once
#include <cstdint>
#include <string>

namespace llama2 {

struct TestHooks {
  int delay_rank = -1;      // compute_delay=RANK:SECONDS — that rank sleeps SECONDS in each micro-step's compute
  double delay_s = 0;
  // skip_collective=RANK:GROUP:SEQ — that rank never joins collective #SEQ of GROUP (world, tp or dp): it blocks
  // there as if it had lost a message; fail_collective=RANK:GROUP:SEQ — it calls that collective on MPI_COMM_NULL,
  // so that MPI itself returns an error.
  enum class CollectiveFault { None, Skip, Fail } fault = CollectiveFault::None;
  int fault_rank = -1;
  std::string fault_group;
  int64_t fault_seq = 0;
  double slow_save_s = 0;  // slow_save=SECONDS — every rank's background checkpoint write starts that much later
  double mem_available_gib = 0;  // mem_available=GIB — the node's MemAvailable reads as GIB (memory guard tests)
  bool no_attention = false;  // no_attention — core attention's output is multiplied by 0 (what is learnt without it)
  bool reference_attention = false;  // reference_attention — the unfused fp64 attention instead of core attention
  bool portable_kernels = false;  // portable_kernels — the row kernels' portable loops even where AVX-512 forms run
};

// The hooks of this process; BadInput naming LLAMA2_TEST_HOOKS and the value on a malformed one.
const TestHooks& test_hooks();

}  // namespace llama2
