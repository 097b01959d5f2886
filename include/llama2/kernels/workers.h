// Owns how the hand-written kernels split work over this process's threads: a fixed number of workers, tasks
// dealt to them in a fixed order (or taken as workers come free, where no result depends on the worker), and
// per-worker scratch buffers, kept apart by guards (partial sums added in worker order, so a result is reproducible
// for a given thread count).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "llama2/kernels/dtype_conversion.h"
#include "llama2/kernels/vector_math.h"

namespace llama2 {

// Workers for `tasks` tasks: one per thread, at most one per task.
inline int64_t workers_for(int64_t tasks) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tasks));
}

// Runs task(t, w) for every t in [0, tasks) on the intra-op threads, w < workers naming the caller's per-worker
// buffers. Worker w takes tasks w, 2W−1−w, 2W+w, ... (W = workers): a snake over tasks that callers order
// largest first (causal tasks differ in cost), so the shares come out even, and the same in every run, so sums
// over per-worker buffers are reproducible.
template <typename F>
void for_each_task(int64_t tasks, int64_t workers, const F& task) {
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w)
      for (int64_t round = 0; round * workers < tasks; ++round) {
        const int64_t t = round * workers + (round % 2 == 0 ? w : workers - 1 - w);
        if (t < tasks) task(t, w);
      }
  });
}

// Runs task(t, w) for every t in [0, tasks) on the intra-op threads, each worker taking the next task not yet taken:
// for tasks whose results do not depend on which worker ran them (per-worker buffers as scratch only), so that a
// core slowed by the shared machine takes fewer.
template <typename F>
void for_each_task_dynamic(int64_t tasks, int64_t workers, const F& task) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w)
      for (int64_t t = next++; t < tasks; t = next++) task(t, w);
  });
}

// Per-worker buffers of `count` elements of type E, one slice per worker, each followed by a guard of
// kWorkerGuardBytes that no one uses. Side by side, the second worker's attention tiles ran ~10% slower than the
// first's (AMD EPYC): the slowness followed the buffer, not the thread, and a gap after each slice removed it (4 KiB
// as slow as none, 64 KiB partly, 128 KiB and more not), as if one core's hardware prefetches ran on into the next.
inline constexpr int64_t kWorkerGuardBytes = 256 << 10;
template <typename E>
struct WorkerBuffers {
  at::Tensor storage;
  int64_t count, stride;  // stride: elements from one worker's slice to the next
  WorkerBuffers(int64_t workers, int64_t count, const at::TensorOptions& options)
      : count(count), stride(count > 0 ? count + kWorkerGuardBytes / static_cast<int64_t>(sizeof(E)) : 0) {
    storage = at::empty({workers, stride}, options.dtype(c10::CppTypeToScalarType<E>()));
  }
  E* operator[](int64_t w) const { return storage.data_ptr<E>() + w * stride; }
  at::Tensor slices() const { return storage.narrow(1, 0, count); }  // [workers, count], without the guards
};

// out[i] ← Σ over k < count of parts[k][i] in that order (0 for no parts), for i < n: per-worker partial sums
// added in worker order.
template <typename T>
LLAMA2_CPU_CLONES void sum_parts(const Acc<T>* const* parts, int64_t count, int64_t n, T* out) {
  constexpr int64_t kChunk = 512;  // the sums of a chunk stay in L1 while each part adds to them
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t i1 = std::min(n, i0 + kChunk);
    Acc<T> sum[kChunk] = {};
    for (int64_t k = 0; k < count; ++k)
#pragma omp simd
      for (int64_t i = i0; i < i1; ++i) sum[i - i0] += parts[k][i];
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) out[i] = from_acc<T>(sum[i - i0]);
  }
}

}  // namespace llama2
