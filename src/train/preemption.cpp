// Async-signal-safe flag set by SIGTERM / SIGUSR1.
#include "llama2/preemption.h"

#include <csignal>

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
int preemption_signal() { return g_signal; }

}  // namespace llama2
