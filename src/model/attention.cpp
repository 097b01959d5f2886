// Core attention, flash-attention style: causal tiles of queries × keys on oneDNN with an online softmax, so
// scores live in a per-thread tile and never in memory; the backward recomputes them from the saved
// log-sum-exp. GQA without repeating k/v.
#include "llama2/model/attention.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/kernels/dtype_conversion.h"
#include "llama2/kernels/matmul.h"
#include "llama2/kernels/packed_operands.h"
#include "llama2/kernels/softmax_rows.h"
#include "llama2/kernels/vector_math.h"
#include "llama2/kernels/workers.h"
#include "llama2/util/errors.h"
#include "llama2/util/phases.h"

namespace llama2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Layouts. q3 [B, rep·s, d] and k3, v3 [B, s, d] with B = b·nkv: the rep query heads of kv group g = batch·nkv
// + kv are rows [h·s, (h+1)·s) of q3[g], so k and v are never repeated; the output's gradient is read in the
// same layout as q3 (do3). The output is [s, b, nq·d], written in place: row r of head g·rep + h starts at
// r·B·rep·d + (g·rep + h)·d.
// Tiles: query rows [r0, r0 + rows) of one head (kAttentionBlockRows) against keys [j0, j0 + keys)
// (kAttentionBlockKeys). Query rows [r0, r0 + rows) see keys [0, r0 + rows) only: tiles beyond are skipped,
// and in tiles that cross the diagonal the keys after a row's position get probability 0, written as 0 without an
// exponential (what exp of the causal mask's kMaskedScore is in fp32 and bf16), from the positions rather than
// read from an [s, s] matrix.
// Key tiles start at multiples of kAttentionBlockKeys, a multiple of kAttentionBlockRows, so a tile never starts
// after its first row's position, and every row of a tile sees at least one of its keys. The backward holds its
// tiles transposed (keys × rows): then only the GEMM into d_q reads one transposed, where oneDNN's brgemm runs ~10%
// slower than on plain operands (measured), instead of those into d_k and d_v.
static_assert(kAttentionBlockKeys % kAttentionBlockRows == 0);
struct Geometry {
  int64_t groups, rep, s, d;  // groups = b·nkv
  int64_t query_blocks() const { return (s + kAttentionBlockRows - 1) / kAttentionBlockRows; }
  int64_t key_blocks() const { return (s + kAttentionBlockKeys - 1) / kAttentionBlockKeys; }
  int64_t head_row(int64_t g, int64_t h, int64_t r) const { return (g * rep + h) * s + r; }  // in q3, do3, lse
  int64_t output_stride() const { return groups * rep * d; }                                  // of rows in out
  int64_t output_offset(int64_t g, int64_t h, int64_t r) const { return r * output_stride() + (g * rep + h) * d; }
  // Whether to pack the tiles' right operands once per call (SequenceOperand): a key is read by every query tile
  // from its own on (~s / 256 on average), a query row by every key tile up to it, once only when s ≤
  // kAttentionBlockKeys, where packing measured slower (seq 512: the packing costs more than the copies it saves).
  bool worth_packing() const { return s > kAttentionBlockKeys; }
};

// The row kernels below are compiled per ISA for each storage type (LLAMA2_CPU_CLONES).

// The forward's last step for a query tile: out rows (out_stride apart) ← o / l, and lse ← m + log l per row.
template <typename T>
LLAMA2_CPU_CLONES void finish_rows(const Acc<T>* o, const Acc<T>* m, const Acc<T>* l, int64_t rows, int64_t d,
                                   T* out, int64_t out_stride, Acc<T>* lse) {
  for (int64_t r = 0; r < rows; ++r) {
    const Acc<T> inv = 1 / l[r];
    T* y = out + r * out_stride;
#pragma omp simd
    for (int64_t k = 0; k < d; ++k) y[k] = from_acc<T>(o[r * d + k] * inv);
    lse[r] = m[r] + std::log(l[r]);
  }
}

// D[r] = Σ over d of a[r]·b[r] for rows of a and b (lda, ldb apart).
template <typename T>
LLAMA2_CPU_CLONES void row_dots(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t rows, int64_t d,
                                Acc<T>* D) {
  for (int64_t r = 0; r < rows; ++r) {
    Acc<T> dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t k = 0; k < d; ++k) dot += to_acc(a[r * lda + k]) * to_acc(b[r * ldb + k]);
    D[r] = dot;
  }
}

// D [groups, rep·s] ← Σ over d of do·out per query row (the softmax backward's row term).
template <typename T>
void output_dots(const Geometry& geo, const T* do3, const T* out, Acc<T>* D) {
  at::parallel_for(0, geo.groups * geo.rep, 1, [&](int64_t begin, int64_t end) {
    for (int64_t gh = begin; gh < end; ++gh) {
      const int64_t g = gh / geo.rep, h = gh % geo.rep;
      row_dots(do3 + geo.head_row(g, h, 0) * geo.d, geo.d, out + geo.output_offset(g, h, 0), geo.output_stride(),
               geo.s, geo.d, D + geo.head_row(g, h, 0));
    }
  });
}

// Sequences x [n, s, d] (k, v per group; q, do per head) as the tiles' right operands: positions [r0, r0 + rows) of
// sequence i as rows [rows, d] of x[i], or as columns [d, rows] of x[i]ᵀ. With `pack`, where this CPU's tile GEMMs
// read packed operands (packed_operands.h), each sequence is packed once per call instead of once per tile that
// reads it; rows only for d ≤ kPackedColumns, where a range of the packed matrix is a packed matrix itself.
template <typename T>
class SequenceOperand {
 public:
  SequenceOperand(const Geometry& geo, const T* x, int64_t n, bool transpose, bool pack,
                  const at::TensorOptions& options)
      : geo_(geo), x_(x), transpose_(transpose) {
    if (!pack || !packable(whole(0)) || (!transpose && geo.d > kPackedColumns)) return;
    const size_t bytes = packed_bytes(whole(0));
    packed_ = at::empty({n, static_cast<int64_t>(bytes)}, options.dtype(at::kByte));
    sequences_.resize(n);
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) sequences_[i] = llama2::pack(whole(i), packed_[i].data_ptr());
    });
  }
  // Positions [r0, r0 + rows) of sequence i: [rows, d], or [d, rows] transposed.
  TileOperand positions(int64_t i, int64_t r0, int64_t rows) const {
    if (!sequences_.empty())
      return transpose_ ? packed_columns(sequences_[i], r0, rows) : packed_rows(sequences_[i], r0, rows);
    const TileOperand m = matrix(x_ + (i * geo_.s + r0) * geo_.d, rows, geo_.d, geo_.d);
    return transpose_ ? transposed(m) : m;
  }

 private:
  TileOperand whole(int64_t i) const {
    const TileOperand m = matrix(x_ + i * geo_.s * geo_.d, geo_.s, geo_.d, geo_.d);
    return transpose_ ? transposed(m) : m;
  }
  const Geometry& geo_;
  const T* x_;
  bool transpose_;
  at::Tensor packed_;                   // [n, bytes of one]
  std::vector<TileOperand> sequences_;  // each sequence's packed operand; empty when read in place
};

// A score tile in Acc and its copy in the inputs' type for the GEMMs (the same memory when that type is Acc).
template <typename T>
struct Tiles {
  WorkerBuffers<Acc<T>> z;
  std::optional<WorkerBuffers<T>> z_t;
  static constexpr int64_t kElements = kAttentionBlockRows * kAttentionBlockKeys;
  Tiles(int64_t workers, const at::TensorOptions& options) : z(workers, kElements, options) {
    if constexpr (!std::is_same_v<T, Acc<T>>) z_t.emplace(workers, kElements, options);
  }
  Acc<T>* acc(int64_t w) const { return z[w]; }
  T* inputs(int64_t w) const {
    if constexpr (std::is_same_v<T, Acc<T>>) return z[w];
    else return (*z_t)[w];
  }
};

// out [s, b, nq·d] ← softmax(q·kᵀ·scale + causal mask)·v; lse [groups, rep·s] ← each query row's log-sum-exp.
// A task is one query tile of one head, largest first; each writes its own rows only, so workers take them as they
// come free.
template <typename T>
void attention_forward(const Geometry& geo, const T* q3, const T* k3, const T* v3, Acc<T> scale, T* out, Acc<T>* lse,
                       const at::TensorOptions& options) {
  using A = Acc<T>;
  const int64_t heads = geo.groups * geo.rep, tasks = heads * geo.query_blocks(), workers = workers_for(tasks);
  const Tiles<T> tiles(workers, options);
  const WorkerBuffers<A> o(workers, kAttentionBlockRows * geo.d, options);  // unnormalised output [rows, d]
  const WorkerBuffers<A> stats(workers, 2 * kAttentionBlockRows, options);  // running max and sum per row
  const SequenceOperand<T> k_t(geo, k3, geo.groups, true, geo.worth_packing(), options);
  const SequenceOperand<T> v(geo, v3, geo.groups, false, geo.worth_packing(), options);
  for_each_task_dynamic(tasks, workers, [&](int64_t t, int64_t w) {
    const int64_t block = geo.query_blocks() - 1 - t / heads, g = t % heads / geo.rep, h = t % geo.rep;
    const int64_t r0 = block * kAttentionBlockRows, rows = std::min(kAttentionBlockRows, geo.s - r0);
    const TileOperand q = matrix(q3 + geo.head_row(g, h, r0) * geo.d, rows, geo.d, geo.d);
    A *z = tiles.acc(w), *m = stats[w], *l = stats[w] + kAttentionBlockRows;
    T* p = tiles.inputs(w);
    for (int64_t j0 = 0; j0 < r0 + rows; j0 += kAttentionBlockKeys) {
      const int64_t keys = std::min(kAttentionBlockKeys, r0 + rows - j0);
      tile_matmul(q, k_t.positions(g, j0, keys), z, keys, false);  // z = q·kᵀ  [rows, keys]
      online_softmax_rows(z, rows, keys, r0 - j0, scale, j0 == 0, m, l, o[w], geo.d, p);
      tile_matmul(matrix(p, rows, keys, keys), v.positions(g, j0, keys), o[w], geo.d, j0 > 0);  // o (+)= p·v  [rows, d]
    }
    finish_rows(o[w], m, l, rows, geo.d, out + geo.output_offset(g, h, r0), geo.output_stride(),
                lse + geo.head_row(g, h, r0));
  });
}

// d_q as partial sums per key tile, in Acc: the task of key tile j writes its product ds·k for every query tile that
// sees it once (no zeroing, no accumulation), and d_q sums each query tile's parts in key-tile order, so the result
// is the same whichever worker ran which task. Part j holds the query rows [j0, s) of every head that key tile j
// (keys [j0, j0 + kAttentionBlockKeys)) sees: [groups·rep, s − j0, d].
template <typename T>
struct QueryGradientParts {
  const Geometry& geo;
  // [key blocks]: a block each, at most d_q's size in Acc, so the heap keeps them between calls (one block of them
  // all, 38 MB for the 58M model at seq 4096, would pass glibc's 32 MiB mmap threshold and be faulted in every call).
  std::vector<at::Tensor> parts;
  QueryGradientParts(const Geometry& geo, const at::TensorOptions& options) : geo(geo) {
    for (int64_t j0 = 0; j0 < geo.s; j0 += kAttentionBlockKeys)
      parts.push_back(at::empty({geo.groups * geo.rep, geo.s - j0, geo.d},
                                options.dtype(c10::CppTypeToScalarType<Acc<T>>())));
  }
  // Key tile j's product for the query rows from r (≥ j0) of head h of group g: [rows, d].
  Acc<T>* part(int64_t j, int64_t g, int64_t h, int64_t r) const {
    const int64_t j0 = j * kAttentionBlockKeys;
    return parts[j].data_ptr<Acc<T>>() + ((g * geo.rep + h) * (geo.s - j0) + r - j0) * geo.d;
  }
  // d_q [groups, rep·s, d] ← for each query tile, the sum of its parts in key-tile order.
  void sum_into(T* d_q) const {
    const int64_t blocks = geo.query_blocks();
    at::parallel_for(0, geo.groups * geo.rep * blocks, 1, [&](int64_t begin, int64_t end) {
      std::vector<const Acc<T>*> from;
      for (int64_t tile = begin; tile < end; ++tile) {
        const int64_t g = tile / blocks / geo.rep, h = tile / blocks % geo.rep;
        const int64_t r0 = tile % blocks * kAttentionBlockRows;
        from.clear();
        for (int64_t j = 0; j * kAttentionBlockKeys <= r0; ++j) from.push_back(part(j, g, h, r0));
        sum_parts<T>(from.data(), static_cast<int64_t>(from.size()),
                     std::min(kAttentionBlockRows, geo.s - r0) * geo.d, d_q + geo.head_row(g, h, r0) * geo.d);
      }
    });
  }
};

// Gradients of q3, k3, v3 (do3: the output's gradient in q3's layout; D: Σ over d of do·out per query row). A
// task owns one key tile of one group: it walks every query tile that sees it (all rep heads), so d_k and d_v
// need no synchronisation, and writes its own parts of d_q; so workers take tasks as they come free, largest first.
template <typename T>
void attention_backward(const Geometry& geo, const T* q3, const T* k3, const T* v3, const T* do3, const Acc<T>* lse,
                        const Acc<T>* D, Acc<T> scale, at::Tensor& d_q, at::Tensor& d_k, at::Tensor& d_v) {
  using A = Acc<T>;
  const at::TensorOptions options = d_q.options();
  const int64_t tasks = geo.groups * geo.key_blocks(), workers = workers_for(tasks);
  const Tiles<T> tiles(workers, options), d_tiles(workers, options);  // pᵀ; dpᵀ, then dsᵀ
  const WorkerBuffers<A> d_kv(workers, 2 * kAttentionBlockKeys * geo.d, options);
  const auto acc = options.dtype(c10::CppTypeToScalarType<A>());
  QueryGradientParts<T> d_q_parts(geo, options);
  const int64_t heads = geo.groups * geo.rep;
  const bool pack = geo.worth_packing();
  const SequenceOperand<T> k_rows(geo, k3, geo.groups, false, pack, options);
  const SequenceOperand<T> q_t(geo, q3, heads, true, pack, options), q_rows(geo, q3, heads, false, pack, options);
  const SequenceOperand<T> do_t(geo, do3, heads, true, pack, options), do_rows(geo, do3, heads, false, pack, options);
  for_each_task_dynamic(tasks, workers, [&](int64_t t, int64_t w) {
    const int64_t j = t / geo.groups, j0 = j * kAttentionBlockKeys, g = t % geo.groups;
    const int64_t keys = std::min(kAttentionBlockKeys, geo.s - j0), kv = (g * geo.s + j0) * geo.d;
    A *d_k_w = d_kv[w], *d_v_w = d_kv[w] + kAttentionBlockKeys * geo.d;
    std::fill(d_k_w, d_k_w + 2 * kAttentionBlockKeys * geo.d, A(0));
    A *z = tiles.acc(w), *dp = d_tiles.acc(w);
    T *p = tiles.inputs(w), *ds = d_tiles.inputs(w);
    for (int64_t h = 0; h < geo.rep; ++h)
      for (int64_t r0 = j0 / kAttentionBlockRows * kAttentionBlockRows; r0 < geo.s; r0 += kAttentionBlockRows) {
        const int64_t rows = std::min(kAttentionBlockRows, geo.s - r0), seen = std::min(keys, r0 + rows - j0);
        const int64_t row = geo.head_row(g, h, r0), head = g * geo.rep + h;
        const TileOperand k = matrix(k3 + kv, seen, geo.d, geo.d), v = matrix(v3 + kv, seen, geo.d, geo.d);
        tile_matmul(k, q_t.positions(head, r0, rows), z, rows, false);    // z = k·qᵀ  [seen, rows]
        tile_matmul(v, do_t.positions(head, r0, rows), dp, rows, false);  // dpᵀ = v·d_outᵀ  [seen, rows]
        softmax_gradient_rows(z, dp, seen, rows, r0 - j0, scale, lse + row, D + row, p, ds);  // pᵀ, dsᵀ
        const TileOperand p_t = matrix(p, seen, rows, rows), ds_t = matrix(ds, seen, rows, rows);
        tile_matmul(p_t, do_rows.positions(head, r0, rows), d_v_w, geo.d, true);  // d_v += pᵀ·d_out  [seen, d]
        tile_matmul(ds_t, q_rows.positions(head, r0, rows), d_k_w, geo.d, true);  // d_k += dsᵀ·q  [seen, d]
        tile_matmul(transposed(ds_t), k_rows.positions(g, j0, seen), d_q_parts.part(j, g, h, r0), geo.d,
                    false);  // d_q part = ds·k  [rows, d]
      }
    d_k[g].narrow(0, j0, keys).copy_(at::from_blob(d_k_w, {keys, geo.d}, acc));
    d_v[g].narrow(0, j0, keys).copy_(at::from_blob(d_v_w, {keys, geo.d}, acc));
  });
  d_q_parts.sum_into(d_q.data_ptr<T>());
}

class CoreAttention : public torch::autograd::Function<CoreAttention> {
 public:
  // q3 [B, rep·s, d], k3, v3 [B, s, d] with B = b·nkv → [s, b, nq·d]
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q3, const at::Tensor& k3, const at::Tensor& v3,
                            int64_t b) {
    ScopedPhase phase(Phase::Attention);
    const Geometry geo{k3.size(0), q3.size(1) / k3.size(1), k3.size(1), q3.size(2)};
    const double scale = 1.0 / std::sqrt(static_cast<double>(geo.d));
    at::Tensor out = at::empty({geo.s, b, geo.groups / b * geo.rep * geo.d}, q3.options());
    at::Tensor lse;
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, q3.scalar_type(), "attention_forward", [&] {
      lse = at::empty({geo.groups, geo.rep * geo.s}, q3.options().dtype(c10::CppTypeToScalarType<Acc<scalar_t>>()));
      attention_forward<scalar_t>(geo, q3.data_ptr<scalar_t>(), k3.data_ptr<scalar_t>(), v3.data_ptr<scalar_t>(),
                                  static_cast<Acc<scalar_t>>(scale), out.data_ptr<scalar_t>(),
                                  lse.data_ptr<Acc<scalar_t>>(), q3.options());
    });
    ctx->save_for_backward({q3, k3, v3, out, lse});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    ScopedPhase phase(Phase::Attention);
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q3 = saved[0], &k3 = saved[1], &v3 = saved[2], &out = saved[3], &lse = saved[4];
    const Geometry geo{k3.size(0), q3.size(1) / k3.size(1), k3.size(1), q3.size(2)};
    // [s, b, nq·d] → q3's layout [b·nkv, rep·s, d], so that the tiles' GEMMs read contiguous rows.
    const int64_t b = grads[0].size(1);
    const at::Tensor do3 = grads[0]
                               .view({geo.s, b, geo.groups / b, geo.rep, geo.d})
                               .permute({1, 2, 3, 0, 4})
                               .contiguous()
                               .view(q3.sizes());
    at::Tensor d_q = at::empty_like(q3), d_k = at::empty_like(k3), d_v = at::empty_like(v3);
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, q3.scalar_type(), "attention_backward", [&] {
      using A = Acc<scalar_t>;
      const at::Tensor D = at::empty_like(lse);
      output_dots(geo, do3.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), D.data_ptr<A>());
      attention_backward<scalar_t>(geo, q3.data_ptr<scalar_t>(), k3.data_ptr<scalar_t>(), v3.data_ptr<scalar_t>(),
                                   do3.data_ptr<scalar_t>(), lse.data_ptr<A>(), D.data_ptr<A>(),
                                   static_cast<A>(ctx->saved_data["scale"].toDouble()), d_q, d_k, d_v);
    });
    return {d_q, d_k, d_v, at::Tensor()};
  }
};

}  // namespace

at::Tensor core_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t s = q.size(0), b = q.size(1), nq = q.size(2), nkv = k.size(2), d = q.size(3);
  const int64_t rep = nq / nkv;
  ScopedPhase phase(Phase::Attention);  // the layout copies around the kernel too (none for rotary_qkv's)
  // [s, b, n, d] → [b, n, s, d]; query heads of one kv head are adjacent, so they fold into rows.
  const at::Tensor q3 = q.permute({1, 2, 0, 3}).contiguous().view({b * nkv, rep * s, d});
  const at::Tensor k3 = k.permute({1, 2, 0, 3}).contiguous().view({b * nkv, s, d});
  const at::Tensor v3 = v.permute({1, 2, 0, 3}).contiguous().view({b * nkv, s, d});
  return CoreAttention::apply(q3, k3, v3, b);  // [s, b, nq·d]
}

at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t s = q.size(0), b = q.size(1), nq = q.size(2), d = q.size(3);
  const auto heads = [&](const at::Tensor& t) {  // [s, b, n, d] → [b, nq, s, d] in fp64, kv heads repeated
    return t.to(at::kDouble).permute({1, 2, 0, 3}).repeat_interleave(nq / t.size(2), 1);
  };
  const at::Tensor mask = at::full({s, s}, static_cast<double>(kMaskedScore), q.options().dtype(at::kDouble)).triu(1);
  const at::Tensor scores = at::matmul(heads(q), heads(k).transpose(-1, -2)) / std::sqrt(static_cast<double>(d)) + mask;
  return at::matmul(scores.softmax(-1), heads(v)).permute({2, 0, 1, 3}).reshape({s, b, nq * d}).to(q.scalar_type());
}

at::Tensor cached_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor& k_cache,
                            at::Tensor& v_cache, int64_t past) {
  const int64_t n = q.size(0), b = q.size(1), nq = q.size(2), nkv = k.size(2), d = q.size(3);
  const int64_t length = past + n, rep = nq / nkv;
  if (length > k_cache.size(2))
    throw RuntimeFailure(
        fmt::format("cached_attention: {} positions, but the cache holds {}", length, k_cache.size(2)));
  ScopedPhase phase(Phase::Attention);
  k_cache.narrow(2, past, n).copy_(k.permute({1, 2, 0, 3}));  // [b, nkv, n, d]
  v_cache.narrow(2, past, n).copy_(v.permute({1, 2, 0, 3}));
  const at::ScalarType acc = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  // The rep query heads of one kv head fold into rows, [b·nkv, rep·n, d]; the cache is read in place, [b·nkv, L, d].
  const int64_t groups = b * nkv;
  const at::Tensor q3 = q.permute({1, 2, 0, 3}).reshape({groups, rep * n, d});
  const at::Tensor keys = k_cache.narrow(2, 0, length).view({groups, length, d});
  const at::Tensor values = v_cache.narrow(2, 0, length).view({groups, length, d});
  at::Tensor scores = at::empty({groups, rep * n, length}, q.options().dtype(acc));  // in fp32 for bf16 inputs
  matmul_into(q3, false, keys, true, scores, false);
  scores.mul_(1 / std::sqrt(static_cast<double>(d)));
  const at::Tensor row_position = at::arange(n, at::kLong).repeat({rep}).add_(past).view({rep * n, 1});
  const at::Tensor masked = at::arange(length, at::kLong).view({1, length}) > row_position;  // [rep·n, L]
  scores.add_(masked.to(acc) * kMaskedScore);
  // Probabilities in the inputs' type for the values' GEMM, as the training kernel's tiles have them.
  const at::Tensor out = matmul(scores.softmax(-1).to(q.scalar_type()), false, values, false);  // [b·nkv, rep·n, d]
  return out.view({b, nq, n, d}).permute({2, 0, 1, 3}).reshape({n, b, nq * d});
}

}  // namespace llama2
