// Owns the hang watchdog: a thread that watches this rank's row of the status board and ends the whole job with
// exit status 4 when a collective wait or the loop's progress stalls past its limit, naming whom it waited for.
#pragma once
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "llama2/dist/status_board.h"

namespace llama2 {

inline constexpr int kExitHang = 4;
// Setup, checkpoint saves and finish may take this many timeouts; a training step's waits and stretches without
// progress may take this many times the slowest step seen so far, when that is longer than the timeout.
inline constexpr double kSlowActivityFactor = 3;

// The limit of one wait or one stretch without progress in `activity`.
double hang_limit_s(Activity activity, double timeout_s, double slowest_step_s);

// What `self` is blocked in and where each other member of that group is: not joined (it has not started
// collective #N), joined but not finished, or on another node (not visible from here). "" when not waiting.
std::string describe_wait(const StatusBoard& board, const RankStatus& self);

class HangWatchdog {
 public:
  // Watches `board`'s row of this rank from now on (timeout_s ≤ 0: does nothing). A collective wait is warned
  // of once at a tenth of its limit; at the limit one error line on stderr, then _exit(kExitHang): the launcher
  // (mpirun, srun --kill-on-bad-exit) ends the other ranks.
  HangWatchdog(const StatusBoard& board, double timeout_s);
  ~HangWatchdog();
  HangWatchdog(const HangWatchdog&) = delete;
  HangWatchdog& operator=(const HangWatchdog&) = delete;

 private:
  void watch();  // the thread
  void check(const RankStatus& self, double running_s);  // running_s: since this process last resumed

  const StatusBoard& board_;
  const double timeout_s_;
  std::string warned_;  // the collective last warned of, so each wait is warned of once
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace llama2
