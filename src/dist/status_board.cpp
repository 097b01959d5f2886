// The node-shared status table: one MPI_Win_allocate_shared window of lock-free atomics, one row per rank.
#include "llama2/dist/status_board.h"

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <new>

#include "llama2/util/errors.h"

namespace llama2 {
namespace {

int64_t monotonic_ns() {  // CLOCK_MONOTONIC is one clock for every process of a node
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

double age_s(int64_t since_ns) { return since_ns > 0 ? static_cast<double>(monotonic_ns() - since_ns) * 1e-9 : 0; }

constexpr size_t kGroups = static_cast<size_t>(CommGroup::Count);

}  // namespace

// Written only by its own rank (its main thread), read by anyone on the node. Lock-free 64-bit atomics are
// address-free, so they work in memory that several processes map.
struct StatusBoard::Slot {
  std::atomic<int64_t> step{0}, activity{0}, progress_ns{0}, slowest_step_ns{0};
  std::atomic<int64_t> started[kGroups]{}, finished[kGroups]{};
  std::atomic<int64_t> wait_group{-1}, wait_op{0}, wait_seq{0}, wait_bytes{0}, wait_since_ns{0};
};
static_assert(std::atomic<int64_t>::is_always_lock_free, "the status board needs lock-free 64-bit atomics");

StatusBoard::StatusBoard(void* node_comm, std::vector<int> node_world_ranks, int world_rank)
    : node_world_ranks_(std::move(node_world_ranks)), world_rank_(world_rank) {
  const auto it = std::find(node_world_ranks_.begin(), node_world_ranks_.end(), world_rank_);
  if (it == node_world_ranks_.end()) throw RuntimeFailure("status board: this rank is not among its node's ranks");
  local_index_ = static_cast<int>(it - node_world_ranks_.begin());
  MPI_Comm comm = static_cast<MPI_Comm>(node_comm);
  const MPI_Aint bytes = local_index_ == 0 ? static_cast<MPI_Aint>(sizeof(Slot) * node_world_ranks_.size()) : 0;
  void* base = nullptr;
  MPI_Win win;
  if (MPI_Win_allocate_shared(bytes, 1, MPI_INFO_NULL, comm, &base, &win) != MPI_SUCCESS)
    throw RuntimeFailure("status board: MPI_Win_allocate_shared failed");
  window_ = win;
  MPI_Aint size = 0;
  int unit = 0;
  MPI_Win_shared_query(win, 0, &size, &unit, &base);
  slots_ = static_cast<Slot*>(base);
  Slot* mine = new (&slots_[local_index_]) Slot;
  mine->progress_ns = monotonic_ns();
  MPI_Barrier(comm);  // every row is constructed before anyone reads one
}

StatusBoard::~StatusBoard() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  MPI_Win win = static_cast<MPI_Win>(window_);
  MPI_Win_free(&win);
}

StatusBoard::Slot& StatusBoard::slot(int local_index) const { return slots_[local_index]; }

void StatusBoard::set_activity(Activity activity, int64_t step) {
  Slot& s = slot(local_index_);
  s.step = step;
  s.activity = static_cast<int64_t>(activity);
  s.progress_ns = monotonic_ns();
}

void StatusBoard::progress() { slot(local_index_).progress_ns = monotonic_ns(); }

void StatusBoard::record_step_seconds(double seconds) {
  Slot& s = slot(local_index_);
  s.slowest_step_ns = std::max<int64_t>(s.slowest_step_ns, static_cast<int64_t>(seconds * 1e9));
}

int64_t StatusBoard::collective_started(CommGroup group) {
  return ++slot(local_index_).started[static_cast<size_t>(group)];
}

void StatusBoard::waiting(CommGroup group, CollectiveOp op, int64_t seq, int64_t bytes) {
  Slot& s = slot(local_index_);
  s.wait_op = static_cast<int64_t>(op);
  s.wait_seq = seq;
  s.wait_bytes = bytes;
  s.wait_since_ns = monotonic_ns();
  s.wait_group = static_cast<int64_t>(group);  // last: a reader that sees the group sees the rest
}

void StatusBoard::collective_finished(CommGroup group, int64_t seq) {
  Slot& s = slot(local_index_);
  std::atomic<int64_t>& finished = s.finished[static_cast<size_t>(group)];
  if (finished < seq) finished = seq;
  if (s.wait_group == static_cast<int64_t>(group) && s.wait_seq == seq) s.wait_group = -1;
  s.progress_ns = monotonic_ns();
}

RankStatus StatusBoard::view(int local_index) const {
  const Slot& s = slot(local_index);
  RankStatus r;
  r.world_rank = node_world_ranks_[local_index];
  r.step = s.step;
  r.activity = static_cast<Activity>(s.activity.load());
  r.progress_age_s = age_s(s.progress_ns);
  r.slowest_step_s = static_cast<double>(s.slowest_step_ns) * 1e-9;
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
  return r;
}

RankStatus StatusBoard::self() const { return view(local_index_); }

std::optional<RankStatus> StatusBoard::read(int world_rank) const {
  const auto it = std::find(node_world_ranks_.begin(), node_world_ranks_.end(), world_rank);
  if (it == node_world_ranks_.end()) return std::nullopt;
  return view(static_cast<int>(it - node_world_ranks_.begin()));
}

void StatusBoard::set_members(CommGroup group, std::vector<int> world_ranks) {
  members_[static_cast<size_t>(group)] = std::move(world_ranks);
}

const std::vector<int>& StatusBoard::members(CommGroup group) const { return members_[static_cast<size_t>(group)]; }

}  // namespace llama2
