// The hang watchdog thread: limits per activity, the report of a stuck collective, and the job's end.
#include "llama2/train/hang_watchdog.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "llama2/util/human_units.h"

namespace llama2 {
namespace {

size_t index(CommGroup g) { return static_cast<size_t>(g); }

// Activities whose limit follows the step time (setup, checkpoint saves and the finish get fixed multiples).
bool step_like(Activity a) { return a == Activity::Step || a == Activity::Eval || a == Activity::Sample; }

std::string where(const RankStatus& r) {
  return fmt::format("step {}, {}", r.step, kActivityNames[static_cast<size_t>(r.activity)]);
}

// "tp all_reduce #57 (4.0 KiB)"
std::string collective_name(const RankStatus& r) {
  const std::string bytes =
      r.wait_bytes < (1 << 20) ? fmt::format("{} bytes", r.wait_bytes) : format_bytes(r.wait_bytes);
  return fmt::format("{} {} #{} ({})", kCommGroupNames[index(r.wait_group)],
                     kCollectiveOpNames[static_cast<size_t>(r.wait_op)], r.wait_seq, bytes);
}

// Where member `other` stands relative to the collective `self` waits in; "" when it has finished it.
std::string member_state(const StatusBoard& board, const RankStatus& self, int other) {
  const std::optional<RankStatus> r = board.read(other);
  if (!r) return fmt::format("rank {} is on another node (not visible from here)", other);
  const size_t g = index(self.wait_group);
  const std::string state = fmt::format("at {}, last {} collective started #{}, no progress for {:.1f} s", where(*r),
                                        kCommGroupNames[g], r->started[g], r->progress_age_s);
  if (r->started[g] < self.wait_seq) return fmt::format("rank {} has not joined it ({})", other, state);
  if (r->finished[g] < self.wait_seq) return fmt::format("rank {} joined it but has not finished ({})", other, state);
  return "";
}

}  // namespace

double hang_limit_s(Activity activity, double timeout_s, double slowest_step_s) {
  if (step_like(activity))
    return std::max(timeout_s, kSlowActivityFactor * slowest_step_s);
  return kSlowActivityFactor * timeout_s;
}

std::string describe_wait(const StatusBoard& board, const RankStatus& self) {
  if (!self.waiting) return "";
  std::string others;
  for (int member : board.members(self.wait_group)) {
    if (member == self.world_rank) continue;
    const std::string state = member_state(board, self, member);
    if (!state.empty()) others += (others.empty() ? "" : "; ") + state;
  }
  return fmt::format("{} at {}: {}", collective_name(self), where(self),
                     others.empty() ? "every other member has finished it" : others);
}

HangWatchdog::HangWatchdog(const StatusBoard& board, double timeout_s) : board_(board), timeout_s_(timeout_s) {
  if (timeout_s_ > 0) thread_ = std::thread([this] { watch(); });
}

HangWatchdog::~HangWatchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HangWatchdog::watch() {
  using Clock = std::chrono::steady_clock;
  const auto tick = std::chrono::duration<double>(std::clamp(timeout_s_ / 50, 0.02, 1.0));
  auto last = Clock::now(), resumed = last;  // the time before the watchdog started is not counted either
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, tick, [this] { return stop_; })) {
    // A gap between ticks far beyond the tick means this whole process was not running (SIGSTOP, a paused VM, a
    // node swapping): that time is not this rank waiting or stalling, so ages count from the resumption.
    const auto now = Clock::now();
    const double gap = std::chrono::duration<double>(now - last).count();
    last = now;
    if (gap > std::max(1.0, 10 * tick.count())) {
      resumed = now;
      spdlog::warn("rank {}: this process did not run for {:.1f} s (stopped, or the node stalled)",
                   board_.self().world_rank, gap);
    }
    check(board_.self(), std::chrono::duration<double>(now - resumed).count());
  }
}

void HangWatchdog::check(const RankStatus& self, double running_s) {
  const double age = std::min(self.waiting ? self.wait_age_s : self.progress_age_s, running_s);
  const double limit = hang_limit_s(self.activity, timeout_s_, self.slowest_step_s);
  // Only waits are warned of early: a long stretch of compute without progress marks is normal in a big step.
  const bool fail = age >= limit;
  const bool warn = !fail && self.waiting && age >= limit / 10 && collective_name(self) != warned_;
  if (!fail && !warn) return;  // the report below is built only when it is due
  const std::string rule =
      step_like(self.activity)
          ? fmt::format("limit {:.1f} s: --collective_timeout {:g}, or {:g} x the slowest step so far ({:.1f} s)",
                        limit, timeout_s_, kSlowActivityFactor, self.slowest_step_s)
          : fmt::format("limit {:.1f} s: {:g} x --collective_timeout {:g} in {}", limit, kSlowActivityFactor,
                        timeout_s_, kActivityNames[static_cast<size_t>(self.activity)]);
  const std::string what =
      self.waiting ? fmt::format("waiting {:.1f} s in {}", age, describe_wait(board_, self))
                   : fmt::format("no progress for {:.1f} s at {} (a hung filesystem or data read?)", age, where(self));
  if (fail) {
    const std::string line = fmt::format("error: rank {}: {} ({}); ending the job with exit status {}\n",
                                         self.world_rank, what, rule, kExitHang);
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
    _exit(kExitHang);
  }
  warned_ = collective_name(self);
  spdlog::warn("rank {}: {} ({})", self.world_rank, what, rule);
}

}  // namespace llama2
