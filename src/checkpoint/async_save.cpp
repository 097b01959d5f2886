// A background thread per save: the rank's file written while the next steps train (without a snapshot: while the
// next step's forward and backward passes run).
#include "llama2/checkpoint/async_save.h"

#include <atomic>
#include <chrono>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "llama2/dist/communicator.h"
#include "llama2/util/errors.h"
#include "llama2/util/test_hooks.h"

namespace llama2 {

struct AsyncCheckpointer::Pending {
  PreparedSave save;
  int64_t step = 0;
  std::thread writer;
  std::atomic<bool> done{false};
  uint32_t crc = 0;
  std::exception_ptr failure;  // the write's error, rethrown on the main thread at publication
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

AsyncCheckpointer::AsyncCheckpointer(std::string root, int64_t keep_last, const DistributedContext& dist, bool async,
                                     bool snapshot)
    : root_(std::move(root)), keep_last_(keep_last), dist_(dist), async_(async), copies_(snapshot) {}

AsyncCheckpointer::~AsyncCheckpointer() {
  if (pending_ && pending_->writer.joinable()) pending_->writer.join();
}

double AsyncCheckpointer::save(const Llama& model, const ShardedAdamW& optimizer, const TrainingState& state) {
  const auto start = std::chrono::steady_clock::now();
  finish();
  if (!async_) {
    save_checkpoint(root_, keep_last_, model, optimizer, state, dist_);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  pending_ = std::make_unique<Pending>();
  pending_->save = prepare_save(root_, model, optimizer, state, dist_, copies_ ? &snapshot_ : nullptr);
  pending_->step = state.step;
  Pending* p = pending_.get();
  p->writer = std::thread([p] {
    try {
      if (test_hooks().slow_save_s > 0)  // a slow filesystem, for the tests
        std::this_thread::sleep_for(std::chrono::duration<double>(test_hooks().slow_save_s));
      p->crc = write_rank_file(p->save);
    } catch (...) {
      p->failure = std::current_exception();
    }
    p->done = true;
  });
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

bool AsyncCheckpointer::all_written() {
  if (!pending_) return false;
  at::Tensor done = at::full({1}, pending_->done ? 1.0 : 0.0, at::kDouble);
  dist_.world().all_reduce(done);
  return done.item<double>() == dist_.layout().world;
}

int64_t AsyncCheckpointer::pending_step() const { return pending_ ? pending_->step : -1; }

double AsyncCheckpointer::wait_for_state() {
  if (copies_ || !pending_ || !pending_->writer.joinable()) return 0;
  const auto start = std::chrono::steady_clock::now();
  pending_->writer.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string AsyncCheckpointer::finish() {
  if (!pending_) return "";
  std::unique_ptr<Pending> p = std::move(pending_);
  if (p->writer.joinable()) p->writer.join();
  if (p->failure) std::rethrow_exception(p->failure);
  const std::string dir = publish_save(p->save, p->crc, keep_last_, dist_);
  spdlog::info("checkpoint {} published {:.2f} s after its save began (written in the background)", dir,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - p->started).count());
  return dir;
}

}  // namespace llama2
