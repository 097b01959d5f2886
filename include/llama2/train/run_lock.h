// Owns the run-directory lock: one live `train` per --output_dir, also across hosts on a shared filesystem
// (NFS, Lustre/FSx), so a double-submitted or re-submitted job cannot interleave metrics or checkpoints.
#pragma once
#include <string>

namespace llama2 {

class RunLock {
 public:
  // Creates <output_dir>/run.lock atomically with its content: this run's host, pid, Slurm job id and restart count
  // and start time. A lock whose holder is gone (this Slurm job after a requeue, a Slurm job that Slurm says no
  // longer runs, or a pid on this host that no longer runs) is taken over with one warning line naming it; a live
  // holder's is BadInput naming it, and nothing in the directory is touched.
  explicit RunLock(const std::string& output_dir);
  ~RunLock();  // removes the lock file
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  std::string path_;
};

}  // namespace llama2
