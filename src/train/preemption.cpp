// Async-signal-safe flag set by SIGTERM / SIGUSR1, and the ranks' agreement on it.
#include "llama2/train/preemption.h"

#include <csignal>

#include <ATen/ATen.h>

#include "llama2/dist/communicator.h"

namespace llama2 {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_signal(int signal) { g_signal = signal; }

}  // namespace

void install_preemption_handlers() {
  struct sigaction action{};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

bool preemption_requested() { return g_signal != 0; }

bool preemption_agreed(const DistributedContext& dist) {
  at::Tensor flag = at::full({1}, preemption_requested() ? 1 : 0, at::kLong);
  dist.world().all_reduce(flag, ReduceOp::Max);
  return flag.item<int64_t>() != 0;
}

}  // namespace llama2
