// Owns the step-time breakdown: wall time of scoped regions on the main thread, by phase. The outermost
// region wins (a GEMM inside core attention counts as attention); time outside every region is
// "elementwise" (norms, rotary, SwiGLU, residuals, embedding).
#pragma once
#include <array>
#include <chrono>
#include <string>

namespace llama2 {

// Loss: the lm_head fused with the cross-entropy, its GEMMs included. GradReduce: the exposed part of the DP
// gradient reduction (what backward did not hide); Communication: every other collective (TP/SP mappings, loss and
// norm reductions, the ZeRO-1 parameter all-gather).
enum class Phase { Gemm, Attention, Loss, Communication, GradReduce, Optimizer, Data, Count };

inline constexpr std::array<const char*, static_cast<size_t>(Phase::Count)> kPhaseNames = {
    "gemm", "attention", "loss", "communication", "grad_reduce", "optimizer", "data"};

using PhaseSeconds = std::array<double, static_cast<size_t>(Phase::Count)>;

class ScopedPhase {
 public:
  explicit ScopedPhase(Phase phase);
  ~ScopedPhase();
  ScopedPhase(const ScopedPhase&) = delete;
  ScopedPhase& operator=(const ScopedPhase&) = delete;

 private:
  Phase phase_;
  bool outermost_;
  std::chrono::steady_clock::time_point start_;
};

// Seconds accumulated per phase since the last take_phase_seconds(), which resets them.
PhaseSeconds take_phase_seconds();

// Seconds spent waiting in collectives (communication and the exposed gradient reduction) so far, not reset:
// the difference over an interval is what the interval waited for other ranks.
double collective_wait_seconds();

}  // namespace llama2
