// The ring of recent collectives.
#include "llama2/dist/flight_recorder.h"

#include <chrono>

namespace llama2 {
namespace {

double unix_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

void FlightRecorder::posted(CommGroup group, int64_t seq, CollectiveOp op, int64_t bytes) {
  const CollectiveRecord record{group, seq, op, bytes, unix_s(), -1};
  std::lock_guard<std::mutex> lock(mutex_);
  if (ring_.size() < kFlightRecorderSize) {
    ring_.push_back(record);
    return;
  }
  ring_[next_] = record;
  next_ = (next_ + 1) % kFlightRecorderSize;
}

void FlightRecorder::finished(CommGroup group, int64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (CollectiveRecord& r : ring_)  // 64 entries: a scan is cheaper than an index kept in step
    if (r.group == group && r.seq == seq && r.finished_unix_s < 0) r.finished_unix_s = unix_s();
}

std::vector<CollectiveRecord> FlightRecorder::records() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<CollectiveRecord> out(ring_.begin() + static_cast<int64_t>(next_), ring_.end());
  out.insert(out.end(), ring_.begin(), ring_.begin() + static_cast<int64_t>(next_));
  return out;
}

}  // namespace llama2
