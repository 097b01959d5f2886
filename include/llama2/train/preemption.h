// Owns SIGTERM/SIGUSR1 handling: a signal only sets a flag; the training loop checks it after each
// step (agreed over all ranks), saves a checkpoint and exits with kExitPreempted.
#pragma once

namespace llama2 {

class DistributedContext;

// Exit status of a run stopped by SIGTERM or SIGUSR1 after saving a checkpoint: requeue it to continue.
inline constexpr int kExitPreempted = 3;

void install_preemption_handlers();
bool preemption_requested();  // this process has received SIGTERM or SIGUSR1

// True on every rank when any rank has received SIGTERM or SIGUSR1 (a collective over the world).
bool preemption_agreed(const DistributedContext& dist);

}  // namespace llama2
