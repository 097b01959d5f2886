// The hang watchdog thread: limits per activity, liveness of every rank, the flight-recorder dump and the job's end.
#include "llama2/train/hang_watchdog.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "llama2/util/file_io.h"
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

// ", silent for 7.2 s" when a rank's heartbeats have stopped for more than three beats.
std::string silence(const RankStatus& r, double interval_s) {
  if (!r.ever_heard) return fmt::format(", never heard from ({:.1f} s)", r.heard_age_s);
  return r.heard_age_s > 3 * interval_s ? fmt::format(", silent for {:.1f} s", r.heard_age_s) : "";
}

// Where member `other` stands relative to the collective `self` waits in; "" when it has finished it.
std::string member_state(const StatusBoard& board, const RankStatus& self, int other, double interval_s) {
  const RankStatus r = board.read(other);
  const size_t g = index(self.wait_group);
  const std::string state =
      fmt::format("at {}, last {} collective started #{}, no progress for {:.1f} s{}", where(r),
                  kCommGroupNames[g], r.started[g], r.progress_age_s, silence(r, interval_s));
  if (r.started[g] < self.wait_seq) return fmt::format("{} has not joined it ({})", board.describe_rank(other), state);
  if (r.finished[g] < self.wait_seq)
    return fmt::format("{} joined it but has not finished ({})", board.describe_rank(other), state);
  return "";
}

// What `self` is blocked in and where each other member of that group is, on any node: not joined (it has not
// started collective #N), joined but not finished, with its step and how long it has been silent.
std::string describe_wait(const StatusBoard& board, const RankStatus& self, double interval_s) {
  if (!self.waiting) return "";
  std::string others;
  for (int member : board.members(self.wait_group)) {
    if (member == self.world_rank) continue;
    const std::string state = member_state(board, self, member, interval_s);
    if (!state.empty()) others += (others.empty() ? "" : "; ") + state;
  }
  return fmt::format("{} at {}: {}", collective_name(self), where(self),
                     others.empty() ? "every other member has finished it" : others);
}

nlohmann::json row_json(const StatusBoard& board, const RankStatus& r) {
  nlohmann::json j = {{"rank", r.world_rank}, {"host", board.host(r.world_rank)}, {"step", r.step},
                      {"activity", kActivityNames[static_cast<size_t>(r.activity)]},
                      {"progress_age_s", r.progress_age_s}, {"heard_age_s", r.heard_age_s},
                      {"ever_heard", r.ever_heard}, {"left", r.left}};
  for (size_t g = 0; g < kGroups; ++g)
    j["collectives"][kCommGroupNames[g]] = {{"started", r.started[g]}, {"finished", r.finished[g]}};
  if (r.waiting) j["waiting_in"] = collective_name(r);
  return j;
}

}  // namespace

double hang_limit_s(Activity activity, double timeout_s, double slowest_step_s, double first_step_s) {
  if (!step_like(activity)) return kSlowActivityFactor * timeout_s;
  if (slowest_step_s > 0) return std::max(timeout_s, kSlowActivityFactor * slowest_step_s);
  return std::max(timeout_s, kFirstStepFactor * first_step_s);
}

HangWatchdog::HangWatchdog(const StatusBoard& board, Heartbeat& heartbeat, WatchdogOptions options)
    : board_(board), heartbeat_(heartbeat), options_(std::move(options)) {
  if (options_.collective_timeout_s > 0 || options_.heartbeat_timeout_s > 0) thread_ = std::thread([this] { watch(); });
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
  const double shortest = std::min(options_.collective_timeout_s > 0 ? options_.collective_timeout_s : 1e9,
                                   options_.heartbeat_timeout_s > 0 ? options_.heartbeat_timeout_s : 1e9);
  const auto tick = std::chrono::duration<double>(std::clamp(shortest / 50, 0.02, 0.5));
  auto last = Clock::now(), resumed = last;  // the time before the watchdog started is not counted either
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, tick, [this] { return stop_; })) {
    // A gap between ticks far beyond the tick means this whole process was not running (SIGSTOP, a paused VM, a
    // node swapping): that time is not this rank waiting or others being silent, so ages count from the resumption.
    const auto now = Clock::now();
    const double gap = std::chrono::duration<double>(now - last).count();
    last = now;
    if (gap > std::max(1.0, 10 * tick.count())) {
      resumed = now;
      spdlog::warn("rank {}: this process did not run for {:.1f} s (stopped, or the node stalled)",
                   board_.world_rank(), gap);
    }
    const double running_s = std::chrono::duration<double>(now - resumed).count();
    check_verdict();
    if (options_.heartbeat_timeout_s > 0) check_others(running_s);
    if (options_.collective_timeout_s > 0) check_self(board_.self(), running_s);
  }
}

void HangWatchdog::check_verdict() {
  const Verdict v = heartbeat_.verdict();
  if (v.from < 0) return;
  end_job(v.status, fmt::format("error: rank {}: ending with the job, as rank {} ({}) decided: {}", board_.world_rank(),
                                v.from, board_.host(v.from), v.line),
          false);
}

std::vector<RankStatus> HangWatchdog::silent_ranks(double running_s) const {
  std::vector<RankStatus> silent;
  for (int r = 0; r < board_.world_size(); ++r) {
    if (r == board_.world_rank()) continue;
    const RankStatus row = board_.read(r);
    if (!row.left && std::min(row.heard_age_s, running_s) >= options_.heartbeat_timeout_s) silent.push_back(row);
  }
  std::sort(silent.begin(), silent.end(),
            [](const RankStatus& a, const RankStatus& b) { return a.heard_age_s > b.heard_age_s; });
  return silent;
}

void HangWatchdog::check_others(double running_s) {
  const std::vector<RankStatus> silent = silent_ranks(running_s);
  if (silent.empty()) return;
  std::map<std::string, std::vector<int>> by_host;
  for (const RankStatus& r : silent) by_host[board_.host(r.world_rank)].push_back(r.world_rank);
  std::string hosts;
  for (const auto& [host, ranks] : by_host)
    hosts += fmt::format("{}host {} (rank{} {})", hosts.empty() ? "" : ", ", host, ranks.size() > 1 ? "s" : "",
                         fmt::join(ranks, ", "));
  std::string last;
  for (const RankStatus& r : silent) {
    last += fmt::format("; {}: {}, last heard {:.1f} s ago at {}, collectives started/finished", board_.describe_rank(r.world_rank),
                        r.ever_heard ? "silent" : "never heard", r.heard_age_s, where(r));
    for (size_t g = 0; g < kGroups; ++g)
      last += fmt::format(" {} #{}/#{}", kCommGroupNames[g], r.started[g], r.finished[g]);
  }
  end_job(kExitLost,
          fmt::format("error: rank {}: lost {}: no heartbeat for {:.1f} s (--heartbeat_timeout {:g}: stopped, killed "
                      "or cut off from the network){}; ending the job with exit status {}",
                      board_.world_rank(), hosts, silent.front().heard_age_s, options_.heartbeat_timeout_s, last,
                      kExitLost),
          true);
}

void HangWatchdog::check_self(const RankStatus& self, double running_s) {
  const double age = std::min(self.waiting ? self.wait_age_s : self.progress_age_s, running_s);
  const double timeout = options_.collective_timeout_s;
  const double limit = hang_limit_s(self.activity, timeout, self.slowest_step_s, first_step_s_.load());
  // Only waits are warned of early: a long stretch of compute without progress marks is normal in a big step.
  const bool fail = age >= limit;
  const bool warn = !fail && self.waiting && age >= limit / 10 && collective_name(self) != warned_;
  if (!fail && !warn) return;  // the report below is built only when it is due
  const std::string rule =
      !step_like(self.activity)
          ? fmt::format("limit {:.1f} s: {:g} x --collective_timeout {:g} in {}", limit, kSlowActivityFactor, timeout,
                        kActivityNames[static_cast<size_t>(self.activity)])
      : self.slowest_step_s > 0
          ? fmt::format("limit {:.1f} s: --collective_timeout {:g}, or {:g} x the slowest step so far ({:.1f} s)",
                        limit, timeout, kSlowActivityFactor, self.slowest_step_s)
          : fmt::format("limit {:.1f} s: --collective_timeout {:g}, or {:g} x plan's estimate of a step ({:.1f} s) "
                        "before the first has completed",
                        limit, timeout, kFirstStepFactor, first_step_s_.load());
  const double interval = heartbeat_.interval_s();
  const std::string what =
      self.waiting ? fmt::format("waiting {:.1f} s in {}", age, describe_wait(board_, self, interval))
                   : fmt::format("no progress for {:.1f} s at {} (a hung filesystem or data read?)", age, where(self));
  if (fail)
    end_job(kExitHang,
            fmt::format("error: rank {}: {} ({}); ending the job with exit status {}", self.world_rank, what, rule,
                        kExitHang),
            true);
  warned_ = collective_name(self);
  spdlog::warn("rank {}: {} ({})", self.world_rank, what, rule);
}

void HangWatchdog::dump(const std::string& reason) const {
  const RankStatus self = board_.self();
  nlohmann::json j = {{"rank", self.world_rank}, {"host", board_.host(self.world_rank)},
                      {"who", board_.describe_rank(self.world_rank)}, {"reason", reason},
                      {"self", row_json(board_, self)}};
  j["flight_recorder"] = nlohmann::json::array();
  for (const CollectiveRecord& c : board_.recorder().records())
    j["flight_recorder"].push_back({{"group", kCommGroupNames[index(c.group)]}, {"seq", c.seq},
                                    {"op", kCollectiveOpNames[static_cast<size_t>(c.op)]}, {"bytes", c.bytes},
                                    {"state", c.finished_unix_s < 0 ? "posted" : "finished"},
                                    {"posted_unix_s", c.posted_unix_s}, {"finished_unix_s", c.finished_unix_s}});
  j["ranks"] = nlohmann::json::array();
  for (int r = 0; r < board_.world_size(); ++r)
    if (r != self.world_rank) j["ranks"].push_back(row_json(board_, board_.read(r)));
  const std::string dir = options_.output_dir + "/hang";
  ensure_directory(dir, "--output_dir");
  const std::string text = j.dump(2) + "\n";
  AtomicFile file(fmt::format("{}/rank-{}.json", dir, self.world_rank));
  file.write(text.data(), text.size());
  file.commit();
}

void HangWatchdog::end_job(int status, const std::string& line, bool decided_here) {
  std::fputs((line + "\n").c_str(), stderr);
  std::fflush(stderr);
  if (decided_here) heartbeat_.send_verdict(status, line);
  try {  // a full or hung filesystem must not keep the job from ending
    if (!options_.output_dir.empty()) {
      dump(line);
      if (decided_here) {
        const nlohmann::json end = {{"status", status}, {"rank", board_.world_rank()},
                                    {"host", board_.host(board_.world_rank())}, {"line", line}};
        const std::string text = end.dump(2) + "\n";
        AtomicFile file(options_.output_dir + "/job-end.json",
                        fmt::format("{}/job-end.json.rank-{}.tmp", options_.output_dir, board_.world_rank()));
        file.write(text.data(), text.size());
        file.commit();
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: rank %d: the hang report was not written: %s\n", board_.world_rank(), e.what());
  }
  // The one that decided gives the others a moment to hear its verdict and dump theirs before the launcher, seeing
  // this exit, kills them.
  if (decided_here) std::this_thread::sleep_for(std::chrono::seconds(1));
  _exit(status);
}

}  // namespace llama2
