// Owns this rank's flight recorder: a ring of its last collectives (group, sequence number, op, bytes, when posted
// and finished), written as the communicators post and complete them, read when a hang or a lost rank is diagnosed.
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
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

inline constexpr size_t kFlightRecorderSize = 64;

struct CollectiveRecord {
  CommGroup group = CommGroup::World;
  int64_t seq = 0;                   // the group's sequence number: the same collective on every member
  CollectiveOp op = CollectiveOp::AllReduce;
  int64_t bytes = 0;
  double posted_unix_s = 0;          // wall clock, comparable across nodes (NTP)
  double finished_unix_s = -1;       // < 0 while it has not completed
};

class FlightRecorder {
 public:
  void posted(CommGroup group, int64_t seq, CollectiveOp op, int64_t bytes);
  void finished(CommGroup group, int64_t seq);
  std::vector<CollectiveRecord> records() const;  // oldest first, at most kFlightRecorderSize

 private:
  mutable std::mutex mutex_;  // the main thread writes, the watchdog thread reads
  std::vector<CollectiveRecord> ring_;
  size_t next_ = 0;           // where the next record goes once the ring is full
};

}  // namespace llama2
