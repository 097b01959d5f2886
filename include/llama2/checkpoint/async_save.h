// Owns saving checkpoints without stopping training: a save copies this rank's shards to host memory (all a step
// waits for; where the copy does not fit, the write reads the live shards and the next optimizer step waits for it),
// a background thread writes and fsyncs the rank's file, and the main thread publishes the checkpoint (CRCs,
// meta.json, rename, `latest`) at the first step boundary where every rank's write has finished.
#pragma once
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <thread>

#include "llama2/checkpoint/checkpoint.h"

namespace llama2 {

class AsyncCheckpointer {
 public:
  // `async` false: every save runs its three phases on the calling thread (save_checkpoint's behaviour).
  // `snapshot` false: no copy; the background write reads the live state, so wait_for_state() must be called before
  // that state changes.
  AsyncCheckpointer(std::string root, int64_t keep_last, const DistributedContext& dist, bool async, bool snapshot);
  ~AsyncCheckpointer();  // a write still running is joined; nothing is published from a destructor

  // Starts saving `state` (first finishing the previous save, if one is in flight). Collective. Returns the seconds
  // the caller was held: the snapshot, and with `async` false the whole save.
  double save(const Llama& model, const ShardedAdamW& optimizer, const TrainingState& state);
  // At a step boundary on every rank (collective while a save is in flight): whether every rank's write of the save
  // in flight has finished, so that finish() publishes it without waiting. False when none is in flight.
  bool all_written();
  int64_t pending_step() const;  // the step of the save in flight
  // Before the saved state changes (the optimizer step): without a snapshot, waits until the save in flight is
  // written. Returns the seconds waited (0 with a snapshot or none in flight).
  double wait_for_state();
  // Waits for the save in flight and publishes it. Collective. Returns its directory, "" when none was in flight.
  std::string finish();

 private:
  struct Pending;

  std::string root_;
  int64_t keep_last_;
  const DistributedContext& dist_;
  bool async_, copies_;
  SnapshotBuffers snapshot_;  // reused by every save: free while no save is in flight
  std::unique_ptr<Pending> pending_;
};

}  // namespace llama2
