// Owns how a stuck or lost rank ends the job: a thread that watches this rank's row and every other rank's
// heartbeat on the status board, and on a hang, a lost rank or another rank's verdict dumps this rank's flight
// recorder, names the culprits and ends this process with the documented status.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "llama2/dist/heartbeat.h"
#include "llama2/dist/status_board.h"

namespace llama2 {

inline constexpr int kExitHang = 4;  // a collective wait or the loop's progress stalled past its limit
inline constexpr int kExitLost = 5;  // a rank fell silent: stopped, killed, or cut off from the network
// Setup, checkpoint saves and finish may take this many timeouts; a training step's waits and stretches without
// progress may take this many times the slowest step seen so far, when that is longer than the timeout.
inline constexpr double kSlowActivityFactor = 3;
// Before any step has completed, a step may take this many times plan's estimate of it.
inline constexpr double kFirstStepFactor = 10;

// The limit of one wait or one stretch without progress in `activity`; `first_step_s`: plan's estimate of one step
// (0: none), which bounds step-like activities until a step has completed.
double hang_limit_s(Activity activity, double timeout_s, double slowest_step_s, double first_step_s);

struct WatchdogOptions {
  double collective_timeout_s = 600;  // ≤ 0: no hang limits
  double heartbeat_timeout_s = 20;    // ≤ 0: no liveness check
  std::string output_dir;             // hang/rank-<r>.json and job-end.json go here
};

class HangWatchdog {
 public:
  // From now on: a collective wait is warned of once at a tenth of its limit, and at the limit, or when another
  // rank has been silent for heartbeat_timeout_s, or when another rank's verdict arrives, this rank writes
  // <output_dir>/hang/rank-<r>.json (its flight recorder and what it knows of every rank), sends its verdict to every
  // rank (when it is the one that decided), writes <output_dir>/job-end.json (the status and the line, for the
  // launcher), prints one error line and _exits with kExitHang or kExitLost.
  HangWatchdog(const StatusBoard& board, Heartbeat& heartbeat, WatchdogOptions options);
  ~HangWatchdog();
  // plan's estimate of one step, once the rates it needs are measured: it bounds the first step.
  void set_first_step_estimate(double seconds) { first_step_s_ = seconds; }
  HangWatchdog(const HangWatchdog&) = delete;
  HangWatchdog& operator=(const HangWatchdog&) = delete;

 private:
  void watch();                                          // the thread
  void check_self(const RankStatus& self, double running_s);  // running_s: since this process last resumed
  void check_others(double running_s);
  void check_verdict();
  // The ranks silent for longer than the heartbeat timeout (and not gone by a goodbye), worst first.
  std::vector<RankStatus> silent_ranks(double running_s) const;
  [[noreturn]] void end_job(int status, const std::string& line, bool decided_here);
  void dump(const std::string& reason) const;

  const StatusBoard& board_;
  Heartbeat& heartbeat_;
  const WatchdogOptions options_;
  std::atomic<double> first_step_s_{0};
  std::string warned_;  // the collective last warned of, so each wait is warned of once
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace llama2
