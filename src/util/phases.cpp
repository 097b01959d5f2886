// Phase timers: thread-local nesting depth, process-wide totals (the main thread is the only timer).
#include "llama2/util/phases.h"

namespace llama2 {
namespace {

thread_local int g_depth = 0;
PhaseSeconds g_seconds{};

}  // namespace

ScopedPhase::ScopedPhase(Phase phase) : phase_(phase), outermost_(g_depth++ == 0) {
  if (outermost_) start_ = std::chrono::steady_clock::now();
}

ScopedPhase::~ScopedPhase() {
  --g_depth;
  if (outermost_)
    g_seconds[static_cast<size_t>(phase_)] +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double collective_wait_seconds() {
  return g_seconds[static_cast<size_t>(Phase::Communication)] + g_seconds[static_cast<size_t>(Phase::GradReduce)];
}

PhaseSeconds take_phase_seconds() {
  const PhaseSeconds out = g_seconds;
  g_seconds = {};
  return out;
}

}  // namespace llama2
