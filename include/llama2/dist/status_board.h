// Owns what this rank knows of every rank of the job: its own row (activity, step, progress, collective sequence
// numbers, its flight recorder), written lock-free by its main thread, and the last row heard from each other rank.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "llama2/dist/flight_recorder.h"

namespace llama2 {

// What a rank's loop is doing; setup and checkpoint saves may take longer than a step.
enum class Activity { Setup, Step, Eval, Sample, Checkpoint, Finish, Count };
inline constexpr std::array<const char*, static_cast<size_t>(Activity::Count)> kActivityNames = {
    "setup", "training step", "evaluation", "sampling", "checkpoint save", "finish"};

inline constexpr size_t kGroups = static_cast<size_t>(CommGroup::Count);

// One rank's row as this rank knows it: its own, or the last one heard from it (ages then include the time since).
struct RankStatus {
  int world_rank = 0;
  int64_t step = 0;
  Activity activity = Activity::Setup;
  double progress_age_s = 0;  // since its last progress (an activity change, a micro-step, a finished collective)
  double slowest_step_s = 0;
  double link_rtt_s = 0;      // heartbeat round trip to its nearest other node (smoothed); 0: none measured
  std::array<int64_t, kGroups> started{}, finished{};  // highest sequence numbers
  // The collective it is blocked in, if any:
  bool waiting = false;
  CommGroup wait_group = CommGroup::World;
  CollectiveOp wait_op = CollectiveOp::AllReduce;
  int64_t wait_seq = 0, wait_bytes = 0;
  double wait_age_s = 0;
  // Liveness, for other ranks' rows:
  double heard_age_s = 0;  // since its last heartbeat arrived (0 for this rank's own row)
  bool ever_heard = false; // a heartbeat of it has arrived (or it is this rank)
  bool left = false;       // it ended its run normally (said goodbye)
};

class StatusBoard {
 public:
  // `hosts[r]`: world rank r's host name; `tp`: TP degree (rank r is tp_rank r % tp, dp_rank r / tp).
  StatusBoard(int world_rank, std::vector<std::string> hosts, int tp);
  ~StatusBoard();
  StatusBoard(const StatusBoard&) = delete;
  StatusBoard& operator=(const StatusBoard&) = delete;

  // This rank's writes (its main thread):
  void set_activity(Activity activity, int64_t step);
  void progress();                           // a sign of life inside an activity
  void record_step_seconds(double seconds);  // the slowest one is kept
  int64_t collective_started(CommGroup group, CollectiveOp op, int64_t bytes);  // → its sequence number
  void waiting(CommGroup group, CollectiveOp op, int64_t seq, int64_t bytes);   // blocked in it from now on
  void collective_finished(CommGroup group, int64_t seq);                       // completed (ends any wait)

  // The heartbeat channel's writes (its thread): this rank's link round trip, a row heard from another rank, or its
  // goodbye.
  void set_link_rtt(double seconds);
  void heard(const RankStatus& row);
  void left(int world_rank);

  // Reads, from any thread: this rank's row, or any other rank's as last heard.
  RankStatus self() const;
  RankStatus read(int world_rank) const;
  int world_rank() const { return world_rank_; }
  int world_size() const { return static_cast<int>(hosts_.size()); }
  const std::string& host(int world_rank) const { return hosts_[world_rank]; }
  // "rank 3 (host l2n2, tp_rank 1, dp_rank 1)"
  std::string describe_rank(int world_rank) const;
  const FlightRecorder& recorder() const { return recorder_; }

  // The world ranks of each group this rank belongs to, registered once by the communicators.
  void set_members(CommGroup group, std::vector<int> world_ranks);
  const std::vector<int>& members(CommGroup group) const;

 private:
  struct Slot;
  struct Heard {
    RankStatus row;
    int64_t at_ns = 0;  // when it arrived (0: never)
  };

  int world_rank_;
  std::vector<std::string> hosts_;
  int tp_;
  std::unique_ptr<Slot> mine_;  // lock-free atomics: written by the main thread, read by the others
  FlightRecorder recorder_;
  mutable std::mutex heard_mutex_;
  std::vector<Heard> heard_;    // [world] the others' last rows
  int64_t started_ns_;          // rows never heard count their silence from here
  std::array<std::vector<int>, kGroups> members_;
};

}  // namespace llama2
