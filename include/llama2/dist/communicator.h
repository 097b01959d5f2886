// Owns MPI: start-up/shutdown, the world/TP/DP communicators, and collectives on CPU tensors.
// The only code that calls MPI. Collectives take contiguous fp32/fp64/bf16/int64 tensors.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llama2/dist/heartbeat.h"
#include "llama2/dist/layout.h"
#include "llama2/dist/status_board.h"

namespace at {
class Tensor;
}

namespace llama2 {

enum class ReduceOp { Sum, Max };

// A non-blocking collective in flight. Its buffers must stay alive and untouched until it completes;
// destruction waits for it.
class PendingCollective {
 public:
  PendingCollective(PendingCollective&&) noexcept;
  PendingCollective& operator=(PendingCollective&&) noexcept;
  ~PendingCollective();
  bool test();  // lets MPI progress it; true once it has completed
  void wait();  // blocks until it completes

 private:
  friend class Communicator;
  struct Request;
  explicit PendingCollective(std::unique_ptr<Request> request);
  std::unique_ptr<Request> request_;
};

class Communicator {
 public:
  // Wraps an MPI communicator handle (MPI_Comm, passed as void* to keep mpi.h out of this header).
  // `owned` handles are freed on destruction.
  Communicator(void* mpi_comm, bool owned);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // This process alone (MPI_COMM_SELF): every collective is the identity, and MPI need not be started. For tests,
  // tp=1 references and the measurements of `plan`.
  static const Communicator& self();

  int rank() const { return rank_; }
  int size() const { return size_; }

  // From now on every collective is numbered and published on `board` as one of `group`'s (for the watchdog).
  void publish_to(StatusBoard& board, CommGroup group);

  void all_reduce(at::Tensor& t, ReduceOp op = ReduceOp::Sum) const;  // in place
  // [n, ...] on each rank → [size·n, ...], rank blocks in rank order along dim 0.
  at::Tensor all_gather(const at::Tensor& t) const;
  // The same in place: t [size·n, ...] holds this rank's block at rank·n on entry, every rank's block on return.
  void all_gather_in_place(at::Tensor& t) const;
  // [size·n, ...] on each rank → [n, ...]: this rank's block of the element-wise sum over ranks.
  at::Tensor reduce_scatter(const at::Tensor& t) const;
  // Non-blocking sum over ranks: in place, or of `in` (1-D, Σ counts elements) scattered so that rank r gets
  // the r-th run of counts[r] elements into `out` (1-D, counts[rank] elements).
  PendingCollective all_reduce_async(at::Tensor& t) const;
  PendingCollective reduce_scatter_async(const at::Tensor& in, at::Tensor& out, const std::vector<int64_t>& counts) const;
  void barrier() const;

 private:
  class Published;
  void* comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
  StatusBoard* board_ = nullptr;
  CommGroup group_ = CommGroup::World;
};

// One per process: MPI_Init_thread (FUNNELED: only the main thread calls MPI) ... MPI_Finalize,
// and the three communicators. TP groups are consecutive ranks; DP groups stride by tp.
class DistributedContext {
 public:
  DistributedContext(int* argc, char*** argv);
  ~DistributedContext();

  // Splits the world into TP and DP groups and starts the heartbeat channel; throws BadInput if world % tp != 0
  // or a TP group would span nodes.
  void set_tensor_parallel(int tp, int requested_threads);

  const ParallelLayout& layout() const { return layout_; }
  const Communicator& world() const { return *world_; }
  const Communicator& tp() const { return *tp_; }
  const Communicator& dp() const { return *dp_; }
  // The job's status table (after set_tensor_parallel), where the communicators publish their collectives, and
  // the heartbeat channel that keeps the other ranks' rows in it.
  StatusBoard& status_board() const { return *board_; }
  Heartbeat& heartbeat() const { return *heartbeat_; }

  // Ends every rank of the job with `status` after printing `message` (no hang of the others).
  [[noreturn]] void abort(int status, const std::string& message) const;

 private:
  ParallelLayout layout_;
  std::unique_ptr<StatusBoard> board_;
  std::unique_ptr<Heartbeat> heartbeat_;
  std::unique_ptr<Communicator> world_, tp_, dp_;
};

// Starts MPI, runs `body` on every rank and returns its status. BadInput (status 2) or any other
// exception (status 1) on any rank prints one line naming the rank and ends the whole job (no hang).
int run_on_all_ranks(int* argc, char*** argv, const std::function<int(DistributedContext&)>& body);

}  // namespace llama2
