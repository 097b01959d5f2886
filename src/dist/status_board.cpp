// The job-wide status table: this rank's row in lock-free atomics, the others' as last heard.
#include "llama2/dist/status_board.h"

#include <algorithm>
#include <atomic>
#include <ctime>

#include <fmt/format.h>

namespace llama2 {
namespace {

int64_t monotonic_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

double age_s(int64_t since_ns) { return since_ns > 0 ? static_cast<double>(monotonic_ns() - since_ns) * 1e-9 : 0; }

}  // namespace

// Written only by this rank's main thread; read by its watchdog and heartbeat threads.
struct StatusBoard::Slot {
  std::atomic<int64_t> step{0}, activity{0}, progress_ns{0}, slowest_step_ns{0};
  std::atomic<int64_t> link_rtt_ns{0};  // written by the heartbeat thread
  std::atomic<int64_t> started[kGroups]{}, finished[kGroups]{};
  std::atomic<int64_t> wait_group{-1}, wait_op{0}, wait_seq{0}, wait_bytes{0}, wait_since_ns{0};
};

StatusBoard::StatusBoard(int world_rank, std::vector<std::string> hosts, int tp)
    : world_rank_(world_rank), hosts_(std::move(hosts)), tp_(tp), mine_(std::make_unique<Slot>()),
      heard_(hosts_.size()), started_ns_(monotonic_ns()) {
  mine_->progress_ns = monotonic_ns();
}

StatusBoard::~StatusBoard() = default;

void StatusBoard::set_activity(Activity activity, int64_t step) {
  mine_->step = step;
  mine_->activity = static_cast<int64_t>(activity);
  mine_->progress_ns = monotonic_ns();
}

void StatusBoard::progress() { mine_->progress_ns = monotonic_ns(); }

void StatusBoard::record_step_seconds(double seconds) {
  mine_->slowest_step_ns = std::max<int64_t>(mine_->slowest_step_ns, static_cast<int64_t>(seconds * 1e9));
}

int64_t StatusBoard::collective_started(CommGroup group, CollectiveOp op, int64_t bytes) {
  const int64_t seq = ++mine_->started[static_cast<size_t>(group)];
  recorder_.posted(group, seq, op, bytes);
  return seq;
}

void StatusBoard::waiting(CommGroup group, CollectiveOp op, int64_t seq, int64_t bytes) {
  Slot& s = *mine_;
  s.wait_op = static_cast<int64_t>(op);
  s.wait_seq = seq;
  s.wait_bytes = bytes;
  s.wait_since_ns = monotonic_ns();
  s.wait_group = static_cast<int64_t>(group);  // last: a reader that sees the group sees the rest
}

void StatusBoard::collective_finished(CommGroup group, int64_t seq) {
  Slot& s = *mine_;
  std::atomic<int64_t>& finished = s.finished[static_cast<size_t>(group)];
  if (finished < seq) finished = seq;
  if (s.wait_group == static_cast<int64_t>(group) && s.wait_seq == seq) s.wait_group = -1;
  s.progress_ns = monotonic_ns();
  recorder_.finished(group, seq);
}

void StatusBoard::set_link_rtt(double seconds) { mine_->link_rtt_ns = static_cast<int64_t>(seconds * 1e9); }

void StatusBoard::heard(const RankStatus& row) {
  if (row.world_rank < 0 || row.world_rank >= world_size() || row.world_rank == world_rank_) return;
  std::lock_guard<std::mutex> lock(heard_mutex_);
  Heard& h = heard_[row.world_rank];
  const bool left = h.row.left;
  h.row = row;
  h.row.left = left;
  h.at_ns = monotonic_ns();
}

void StatusBoard::left(int world_rank) {
  if (world_rank < 0 || world_rank >= world_size()) return;
  std::lock_guard<std::mutex> lock(heard_mutex_);
  heard_[world_rank].row.left = true;
}

RankStatus StatusBoard::self() const {
  const Slot& s = *mine_;
  RankStatus r;
  r.world_rank = world_rank_;
  r.step = s.step;
  r.activity = static_cast<Activity>(s.activity.load());
  r.progress_age_s = age_s(s.progress_ns);
  r.slowest_step_s = static_cast<double>(s.slowest_step_ns) * 1e-9;
  r.link_rtt_s = static_cast<double>(s.link_rtt_ns) * 1e-9;
  for (size_t g = 0; g < kGroups; ++g) {
    r.started[g] = s.started[g];
    r.finished[g] = s.finished[g];
  }
  const int64_t group = s.wait_group;
  r.waiting = group >= 0;
  if (r.waiting) {
    r.wait_group = static_cast<CommGroup>(group);
    r.wait_op = static_cast<CollectiveOp>(s.wait_op.load());
    r.wait_seq = s.wait_seq;
    r.wait_bytes = s.wait_bytes;
    r.wait_age_s = age_s(s.wait_since_ns);
  }
  r.ever_heard = true;
  return r;
}

RankStatus StatusBoard::read(int world_rank) const {
  if (world_rank == world_rank_) return self();
  std::lock_guard<std::mutex> lock(heard_mutex_);
  const Heard& h = heard_[world_rank];
  RankStatus r = h.row;
  r.world_rank = world_rank;
  r.ever_heard = h.at_ns > 0;
  r.heard_age_s = age_s(h.at_ns > 0 ? h.at_ns : started_ns_);
  if (r.ever_heard) {  // its ages as it sent them, plus the time since
    r.progress_age_s += r.heard_age_s;
    if (r.waiting) r.wait_age_s += r.heard_age_s;
  }
  return r;
}

std::string StatusBoard::describe_rank(int world_rank) const {
  return fmt::format("rank {} (host {}, tp_rank {}, dp_rank {})", world_rank, hosts_[world_rank], world_rank % tp_,
                     world_rank / tp_);
}

void StatusBoard::set_members(CommGroup group, std::vector<int> world_ranks) {
  members_[static_cast<size_t>(group)] = std::move(world_ranks);
}

const std::vector<int>& StatusBoard::members(CommGroup group) const { return members_[static_cast<size_t>(group)]; }

}  // namespace llama2
