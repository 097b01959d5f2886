// MPI collectives on CPU tensors, MPI start-up and the TP/DP communicator split.
#include "llama2/dist/communicator.h"

#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "llama2/kernels/dtype_conversion.h"
#include "llama2/kernels/vector_math.h"
#include "llama2/util/errors.h"
#include "llama2/util/phases.h"
#include "llama2/util/test_hooks.h"

namespace llama2 {
namespace {

MPI_Comm handle(void* c) { return static_cast<MPI_Comm>(c); }

void check(int rc, const std::string& what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw RuntimeFailure(fmt::format("MPI {} failed: {}", what, std::string(text, len)));
}

// "Allreduce on the tp group"
std::string on_group(const char* call, CommGroup group) {
  return fmt::format("{} on the {} group", call, kCommGroupNames[static_cast<size_t>(group)]);
}

// bf16 has no MPI type: it travels as 16-bit words and is summed by this user op, which adds in fp32 and
// rounds once per pairwise combination; vectorised (c10::BFloat16's scalar conversions took 5× as long: 0.42 ms
// for 1M elements against 0.08 on an AMD EPYC, bit-identical).
LLAMA2_CPU_CLONES void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const c10::BFloat16*>(in);
  auto* b = static_cast<c10::BFloat16*>(inout);
  const int n = *len;
#pragma omp simd
  for (int i = 0; i < n; ++i) b[i] = from_acc<c10::BFloat16>(to_acc(a[i]) + to_acc(b[i]));
}
MPI_Op bf16_sum_op() {
  static const MPI_Op op = [] {  // created after MPI_Init, on first use; freed by MPI_Finalize
    MPI_Op created;
    MPI_Op_create(&bf16_sum, 1, &created);
    return created;
  }();
  return op;
}

MPI_Datatype mpi_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kLong: return MPI_INT64_T;
    case at::kBFloat16: return MPI_UINT16_T;
    default:
      throw RuntimeFailure(fmt::format("collective on unsupported dtype {}; expected float32, float64, "
                                       "bfloat16 or int64", c10::toString(t.scalar_type())));
  }
}

MPI_Op mpi_op(const at::Tensor& t, ReduceOp op) {
  if (t.scalar_type() == at::kBFloat16) {
    if (op != ReduceOp::Sum) throw RuntimeFailure("all_reduce: bf16 supports only a sum; expected fp32 for a max");
    return bf16_sum_op();
  }
  return op == ReduceOp::Sum ? MPI_SUM : MPI_MAX;
}

void require_contiguous(const at::Tensor& t, const char* what) {
  if (!t.is_contiguous())
    throw RuntimeFailure(fmt::format("{} needs a contiguous tensor (got strides {})", what,
                                     c10::str(t.strides())));
}

// t's leading dimension splits into `ranks` equal blocks (the collectives that deal out or gather blocks of it).
void require_blocks(const at::Tensor& t, int ranks, const char* what) {
  if (t.dim() == 0 || t.size(0) % ranks != 0)
    throw RuntimeFailure(fmt::format("{}: leading dimension {} is not a multiple of {} ranks", what,
                                     t.dim() ? t.size(0) : 0, ranks));
}

int count_of(const at::Tensor& t) {
  if (t.numel() > INT32_MAX) throw RuntimeFailure("collective of more than 2^31-1 elements");
  return static_cast<int>(t.numel());
}

int64_t bytes_of(const at::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

// Whether the collective-fault test hook acts on this rank's collective #seq of `group`.
bool hooked(const StatusBoard& board, CommGroup group, int64_t seq, TestHooks::CollectiveFault fault) {
  const TestHooks& hooks = test_hooks();
  return hooks.fault == fault && hooks.fault_rank == board.world_rank() &&
         hooks.fault_group == kCommGroupNames[static_cast<size_t>(group)] && hooks.fault_seq == seq;
}

// A collective's number on the status board and its flight-recorder entry, as it starts. Under the skip_collective
// test hook this rank stays alive and busy (its heartbeat and progress go on) but never joins it, as a rank that
// lost a message or loops elsewhere would.
int64_t start_collective(StatusBoard& board, CommGroup group, CollectiveOp op, int64_t bytes) {
  while (hooked(board, group, board.self().started[static_cast<size_t>(group)] + 1,
                TestHooks::CollectiveFault::Skip)) {
    board.progress();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return board.collective_started(group, op, bytes);
}

// The communicator collective #seq runs on: MPI_COMM_NULL under the fail_collective test hook, so that MPI itself
// returns an error through the handler our communicators carry.
MPI_Comm comm_for(const StatusBoard* board, CommGroup group, int64_t seq, void* comm) {
  return board && hooked(*board, group, seq, TestHooks::CollectiveFault::Fail) ? MPI_COMM_NULL : handle(comm);
}

// Ranks of one TP group must share a node: their collectives run in every layer, at memory speed.
void require_tp_inside_nodes(const std::vector<std::string>& hosts, int tp, int local_size) {
  for (size_t first = 0; first < hosts.size(); first += static_cast<size_t>(tp))
    for (size_t r = first + 1; r < first + static_cast<size_t>(tp); ++r)
      if (hosts[r] != hosts[first])
        throw BadInput(fmt::format(
            "--tensor_parallel_size = {}: the TP group of ranks {}..{} spans hosts {} (rank {}) and {} (rank {}); "
            "expected every TP group inside one node: a TP size dividing the ranks per node ({} here), with ranks "
            "numbered node by node (srun --ntasks-per-node's block distribution, mpirun --map-by slot)",
            tp, first, first + tp - 1, hosts[first], first, hosts[r], r, local_size));
}

}  // namespace

// A blocking collective's life on the status board: numbered and published as waited for when it starts,
// finished when it returns. Without a board (self, unit tests) it does nothing.
class Communicator::Published {
 public:
  Published(const Communicator& c, CollectiveOp op, int64_t bytes)
      : board_(c.size_ > 1 ? c.board_ : nullptr), group_(c.group_) {
    if (!board_) return;
    seq_ = start_collective(*board_, group_, op, bytes);
    board_->waiting(group_, op, seq_, bytes);
  }
  MPI_Comm comm(void* communicator) const { return comm_for(board_, group_, seq_, communicator); }
  ~Published() {
    if (board_) board_->collective_finished(group_, seq_);
  }
  Published(const Published&) = delete;
  Published& operator=(const Published&) = delete;

 private:
  StatusBoard* board_;
  CommGroup group_;
  int64_t seq_ = 0;
};

Communicator::Communicator(void* mpi_comm, bool owned) : comm_(mpi_comm), owned_(owned) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized && handle(comm_) == MPI_COMM_SELF) return;  // self() in a process without MPI: rank 0 of 1
  MPI_Comm_rank(handle(comm_), &rank_);
  MPI_Comm_size(handle(comm_), &size_);
}

Communicator::~Communicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owned_ && !finalized) {
    MPI_Comm c = handle(comm_);
    MPI_Comm_free(&c);
  }
}

void Communicator::publish_to(StatusBoard& board, CommGroup group) {
  board_ = &board;
  group_ = group;
  MPI_Group mine, world;
  MPI_Comm_group(handle(comm_), &mine);
  MPI_Comm_group(MPI_COMM_WORLD, &world);
  std::vector<int> ranks(size_), world_ranks(size_);
  for (int r = 0; r < size_; ++r) ranks[r] = r;
  MPI_Group_translate_ranks(mine, size_, ranks.data(), world, world_ranks.data());
  MPI_Group_free(&mine);
  MPI_Group_free(&world);
  board.set_members(group, std::move(world_ranks));
}

const Communicator& Communicator::self() {
  static Communicator self_comm(MPI_COMM_SELF, false);
  return self_comm;
}

void Communicator::all_reduce(at::Tensor& t, ReduceOp op) const {
  ScopedPhase phase(Phase::Communication);
  require_contiguous(t, "all_reduce");
  if (size_ == 1) return;
  Published published(*this, CollectiveOp::AllReduce, bytes_of(t));
  check(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), count_of(t), mpi_type(t), mpi_op(t, op), published.comm(comm_)),
        on_group("Allreduce", group_));
}

at::Tensor Communicator::all_gather(const at::Tensor& t) const {
  ScopedPhase phase(Phase::Communication);
  require_contiguous(t, "all_gather");
  if (size_ == 1) return t;
  auto sizes = t.sizes().vec();
  if (sizes.empty()) throw RuntimeFailure("all_gather needs a tensor with at least one dimension");
  sizes[0] *= size_;
  at::Tensor out = at::empty(sizes, t.options());
  Published published(*this, CollectiveOp::AllGather, bytes_of(out));
  check(MPI_Allgather(t.data_ptr(), count_of(t), mpi_type(t), out.data_ptr(), count_of(t), mpi_type(t),
                      published.comm(comm_)),
        on_group("Allgather", group_));
  return out;
}

void Communicator::all_gather_in_place(at::Tensor& t) const {
  ScopedPhase phase(Phase::Communication);
  require_contiguous(t, "all_gather_in_place");
  if (size_ == 1) return;
  require_blocks(t, size_, "all_gather_in_place");
  Published published(*this, CollectiveOp::AllGather, bytes_of(t));
  check(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, t.data_ptr(), count_of(t) / size_, mpi_type(t),
                      published.comm(comm_)),
        on_group("Allgather", group_));
}

at::Tensor Communicator::reduce_scatter(const at::Tensor& t) const {
  ScopedPhase phase(Phase::Communication);
  require_contiguous(t, "reduce_scatter");
  if (size_ == 1) return t;
  require_blocks(t, size_, "reduce_scatter");
  auto sizes = t.sizes().vec();
  sizes[0] /= size_;
  at::Tensor out = at::empty(sizes, t.options());
  // MPI_Reduce_scatter with equal counts, not MPI_Reduce_scatter_block: Open MPI 4.1's tuned module runs the block
  // form as a reduce to one rank and a scatter (4 MB on 2 ranks of one node: 14 ms, against 0.43 ms this way).
  const std::vector<int> counts(static_cast<size_t>(size_), count_of(out));
  Published published(*this, CollectiveOp::ReduceScatter, bytes_of(t));
  check(MPI_Reduce_scatter(t.data_ptr(), out.data_ptr(), counts.data(), mpi_type(t), mpi_op(t, ReduceOp::Sum),
                           published.comm(comm_)),
        on_group("Reduce_scatter", group_));
  return out;
}

struct PendingCollective::Request {
  MPI_Request handle = MPI_REQUEST_NULL;
  std::vector<int> counts;  // MPI reads the counts while the collective runs
  // Its number on the status board (none without a board):
  StatusBoard* board = nullptr;
  CommGroup group = CommGroup::World;
  CollectiveOp op = CollectiveOp::AllReduce;
  int64_t seq = 0, bytes = 0;

  Request(StatusBoard* b, CommGroup g, CollectiveOp o, int64_t n)
      : board(b), group(g), op(o), seq(b ? start_collective(*b, g, o, n) : 0), bytes(n) {}
  MPI_Comm comm(void* communicator) const { return comm_for(board, group, seq, communicator); }
  void finished() {
    if (board) board->collective_finished(group, seq);
  }
  int wait() {  // → MPI's return code
    if (board) board->waiting(group, op, seq, bytes);
    const int rc = MPI_Wait(&handle, MPI_STATUS_IGNORE);
    finished();
    return rc;
  }
};

PendingCollective::PendingCollective(std::unique_ptr<Request> request) : request_(std::move(request)) {}
PendingCollective::PendingCollective(PendingCollective&&) noexcept = default;
PendingCollective& PendingCollective::operator=(PendingCollective&&) noexcept = default;

PendingCollective::~PendingCollective() {
  if (request_ && request_->handle != MPI_REQUEST_NULL) request_->wait();
}

bool PendingCollective::test() {
  if (request_->handle == MPI_REQUEST_NULL) return true;
  int done = 0;
  check(MPI_Test(&request_->handle, &done, MPI_STATUS_IGNORE), on_group("Test", request_->group));
  if (done) request_->finished();
  return done != 0;
}

void PendingCollective::wait() {
  ScopedPhase phase(Phase::Communication);
  if (request_->handle != MPI_REQUEST_NULL) check(request_->wait(), on_group("Wait", request_->group));
}

PendingCollective Communicator::all_reduce_async(at::Tensor& t) const {
  require_contiguous(t, "all_reduce_async");
  auto request = std::make_unique<PendingCollective::Request>(size_ > 1 ? board_ : nullptr, group_,
                                                              CollectiveOp::AllReduce, bytes_of(t));
  check(MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), count_of(t), mpi_type(t), mpi_op(t, ReduceOp::Sum),
                       request->comm(comm_), &request->handle),
        on_group("Iallreduce", group_));
  return PendingCollective(std::move(request));
}

PendingCollective Communicator::reduce_scatter_async(const at::Tensor& in, at::Tensor& out,
                                                     const std::vector<int64_t>& counts) const {
  require_contiguous(in, "reduce_scatter_async");
  require_contiguous(out, "reduce_scatter_async");
  auto request = std::make_unique<PendingCollective::Request>(size_ > 1 ? board_ : nullptr, group_,
                                                              CollectiveOp::ReduceScatter, bytes_of(in));
  int64_t total = 0;
  for (int64_t c : counts) {
    if (c < 0 || c > INT32_MAX) throw RuntimeFailure("reduce_scatter_async: a count outside [0, 2^31)");
    request->counts.push_back(static_cast<int>(c));
    total += c;
  }
  if (static_cast<int>(counts.size()) != size_ || total != in.numel() || counts[rank_] != out.numel())
    throw RuntimeFailure(fmt::format("reduce_scatter_async: counts for {} ranks do not match {} in, {} out elements",
                                     counts.size(), in.numel(), out.numel()));
  check(MPI_Ireduce_scatter(in.data_ptr(), out.data_ptr(), request->counts.data(), mpi_type(in),
                            mpi_op(in, ReduceOp::Sum), request->comm(comm_), &request->handle),
        on_group("Ireduce_scatter", group_));
  return PendingCollective(std::move(request));
}

void Communicator::barrier() const {
  Published published(*this, CollectiveOp::Barrier, 0);
  check(MPI_Barrier(published.comm(comm_)), on_group("Barrier", group_));
}

DistributedContext::DistributedContext(int* argc, char*** argv) {
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    throw RuntimeFailure("MPI_Init_thread failed");
  if (provided < MPI_THREAD_FUNNELED)
    throw RuntimeFailure(fmt::format("MPI_Init_thread provided thread level {}; expected at least "
                                     "MPI_THREAD_FUNNELED ({}): the MPI library was built without thread support",
                                     provided, MPI_THREAD_FUNNELED));
  // An MPI error returns its code (and check() makes it our one-line RuntimeFailure) instead of aborting the
  // job; communicators split from the world inherit this.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
  world_ = std::make_unique<Communicator>(MPI_COMM_WORLD, false);
  layout_ = ParallelLayout::make(world_->size(), world_->rank(), 1, 1, 0);
}

DistributedContext::~DistributedContext() {
  heartbeat_.reset();
  tp_.reset();
  dp_.reset();
  world_.reset();
  board_.reset();
  MPI_Finalize();
}

void DistributedContext::set_tensor_parallel(int tp, int requested_threads) {
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_->rank(), MPI_INFO_NULL, &node);
  int local_size = 1, local_rank = 0;
  MPI_Comm_size(node, &local_size);
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_free(&node);

  layout_ = ParallelLayout::make(world_->size(), world_->rank(), tp, local_size, local_rank);
  heartbeat_.reset();  // the previous layout's (tests change it), before its board goes
  heartbeat_ = std::make_unique<Heartbeat>(MPI_COMM_WORLD);
  require_tp_inside_nodes(heartbeat_->hosts(), tp, local_size);
  board_ = std::make_unique<StatusBoard>(world_->rank(), heartbeat_->hosts(), tp);
  layout_.threads = default_threads(requested_threads, local_size);
  MPI_Comm tp_comm, dp_comm;
  check(MPI_Comm_split(MPI_COMM_WORLD, layout_.dp_rank, layout_.tp_rank, &tp_comm), "Comm_split(tp)");
  check(MPI_Comm_split(MPI_COMM_WORLD, layout_.tp_rank, layout_.dp_rank, &dp_comm), "Comm_split(dp)");
  tp_ = std::make_unique<Communicator>(tp_comm, true);
  dp_ = std::make_unique<Communicator>(dp_comm, true);
  world_->publish_to(*board_, CommGroup::World);
  tp_->publish_to(*board_, CommGroup::Tp);
  dp_->publish_to(*board_, CommGroup::Dp);
  heartbeat_->start(*board_);
}

void DistributedContext::abort(int status, const std::string& message) const {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  if (world_->size() > 1) MPI_Abort(MPI_COMM_WORLD, status);
  MPI_Finalize();
  std::_Exit(status);
}

int run_on_all_ranks(int* argc, char*** argv, const std::function<int(DistributedContext&)>& body) {
  DistributedContext dist(argc, argv);
  if (dist.world().rank() != 0) spdlog::set_level(spdlog::level::warn);
  const std::string who = dist.world().size() > 1 ? fmt::format("rank {}: ", dist.world().rank()) : "";
  try {
    return body(dist);
  } catch (const BadInput& e) {
    dist.abort(kExitBadInput, "error: " + who + e.what());
  } catch (const std::exception& e) {
    dist.abort(kExitRuntimeFailure, "error: " + who + one_line(e));
  }
}

}  // namespace llama2
