// Owns the hang watchdog's side channel: a table in memory shared by the ranks of one node, where each rank
// publishes its activity, step, last progress and the sequence numbers of the collectives it started and finished.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace llama2 {

// The communicators a rank takes part in; each numbers its collectives 1, 2, ... in the order every member
// calls them (MPI's rule), so #N names the same collective on all of its ranks.
enum class CommGroup { World, Tp, Dp, Count };
inline constexpr std::array<const char*, static_cast<size_t>(CommGroup::Count)> kCommGroupNames = {"world", "tp",
                                                                                                     "dp"};

enum class CollectiveOp { AllReduce, AllGather, ReduceScatter, Barrier, Count };
inline constexpr std::array<const char*, static_cast<size_t>(CollectiveOp::Count)> kCollectiveOpNames = {
    "all_reduce", "all_gather", "reduce_scatter", "barrier"};

// What a rank's loop is doing; setup and checkpoint saves may take longer than a step.
enum class Activity { Setup, Step, Eval, Sample, Checkpoint, Finish, Count };
inline constexpr std::array<const char*, static_cast<size_t>(Activity::Count)> kActivityNames = {
    "setup", "training step", "evaluation", "sampling", "checkpoint save", "finish"};

// One rank's row as another process (or its own watchdog thread) reads it.
struct RankStatus {
  int world_rank = 0;
  int64_t step = 0;
  Activity activity = Activity::Setup;
  double progress_age_s = 0;  // since its last progress (an activity change, a micro-step, a finished collective)
  double slowest_step_s = 0;
  std::array<int64_t, static_cast<size_t>(CommGroup::Count)> started{}, finished{};  // highest sequence numbers
  // The collective it is blocked in, if any:
  bool waiting = false;
  CommGroup wait_group = CommGroup::World;
  CollectiveOp wait_op = CollectiveOp::AllReduce;
  int64_t wait_seq = 0, wait_bytes = 0;
  double wait_age_s = 0;
};

class StatusBoard {
 public:
  // Collective over the ranks of this node: `node_comm` (an MPI_Comm passed as void*) holds them, and
  // `node_world_ranks[i]` is the world rank of its rank i. The table lives in one MPI_Win_allocate_shared
  // window; afterwards nothing here calls MPI, so a stuck communicator or filesystem cannot block it.
  StatusBoard(void* node_comm, std::vector<int> node_world_ranks, int world_rank);
  ~StatusBoard();
  StatusBoard(const StatusBoard&) = delete;
  StatusBoard& operator=(const StatusBoard&) = delete;

  // This rank's writes (its main thread):
  void set_activity(Activity activity, int64_t step);
  void progress();                             // a sign of life inside an activity
  void record_step_seconds(double seconds);    // the slowest one is kept
  int64_t collective_started(CommGroup group);                                 // → its sequence number
  void waiting(CommGroup group, CollectiveOp op, int64_t seq, int64_t bytes);  // blocked in it from now on
  void collective_finished(CommGroup group, int64_t seq);                      // completed (ends any wait)

  // Reads: this rank's row, or another's when it is on this node (nullopt for a rank on another node).
  RankStatus self() const;
  std::optional<RankStatus> read(int world_rank) const;

  // The world ranks of each group this rank belongs to, registered once by the communicators.
  void set_members(CommGroup group, std::vector<int> world_ranks);
  const std::vector<int>& members(CommGroup group) const;

 private:
  struct Slot;
  Slot& slot(int local_index) const;
  RankStatus view(int local_index) const;

  void* window_ = nullptr;  // MPI_Win
  Slot* slots_ = nullptr;   // [node ranks], in shared memory
  std::vector<int> node_world_ranks_;
  int world_rank_ = 0, local_index_ = 0;
  std::array<std::vector<int>, static_cast<size_t>(CommGroup::Count)> members_;
};

}  // namespace llama2
