// Core attention, flash-attention style: causal tiles of queries × keys on oneDNN with an online softmax, so
// scores live in a per-thread tile and never in memory; the backward recomputes them from the saved
// log-sum-exp. GQA without repeating k/v.
#include "llama2/model/attention.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/kernels/accumulate.h"
#include "llama2/kernels/matmul.h"
#include "llama2/kernels/vector_math.h"
#include "llama2/util/errors.h"
#include "llama2/util/phases.h"

namespace llama2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Layouts. q3 [B, rep·s, d] and k3, v3 [B, s, d] with B = b·nkv: the rep query heads of kv group g = batch·nkv
// + kv are rows [h·s, (h+1)·s) of q3[g], so k and v are never repeated. The output and its gradient are
// [s, b, nq·d], written and read in place (head_rows).
// Tiles: query rows [r0, r0 + rows) of one head (kAttentionBlockRows) against keys [j0, j0 + keys)
// (kAttentionBlockKeys). Query rows [r0, r0 + rows) see keys [0, r0 + rows) only: tiles beyond are skipped,
// and in tiles that cross the diagonal the keys after a row's position get the causal mask's value
// kMaskedScore added, computed from the positions rather than read from an [s, s] matrix.
struct Geometry {
  int64_t groups, rep, s, d;  // groups = b·nkv
  int64_t query_blocks() const { return (s + kAttentionBlockRows - 1) / kAttentionBlockRows; }
  int64_t key_blocks() const { return (s + kAttentionBlockKeys - 1) / kAttentionBlockKeys; }
};

// Rows [r0, r0 + rows) of query head h of group g in x [s, b, nq·d] as [rows, d] (positions b·nq·d apart).
at::Tensor head_rows(const at::Tensor& x, const Geometry& geo, int64_t g, int64_t h, int64_t r0, int64_t rows) {
  const int64_t position_stride = x.size(1) * x.size(2);
  return x.as_strided({rows, geo.d}, {position_stride, 1},
                      x.storage_offset() + r0 * position_stride + (g * geo.rep + h) * geo.d);
}

// The first rows × cols of worker w's tile buffer [workers, kAttentionBlockRows, ≥ cols], contiguous.
at::Tensor tile(const at::Tensor& buffer, int64_t w, int64_t rows, int64_t cols) {
  return buffer[w].view({-1}).narrow(0, 0, rows * cols).view({rows, cols});
}

// Row r of a tile sees its keys [0, visible(r)): `diagonal` = r0 − j0, the tile's query offset from its keys.
LLAMA2_INLINE int64_t visible_keys(int64_t r, int64_t diagonal, int64_t keys) {
  return std::clamp<int64_t>(r + diagonal + 1, 0, keys);
}

// z ← z·scale over a row, plus the causal mask's value after its visible keys.
template <typename A>
LLAMA2_INLINE void scale_and_mask(A* z, int64_t visible, int64_t keys, A scale) {
  for (int64_t i = 0; i < visible; ++i) z[i] *= scale;
  for (int64_t i = visible; i < keys; ++i) z[i] = z[i] * scale + kMaskedScore;
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

int64_t workers_for(int64_t tasks) { return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tasks)); }

// The row kernels below are compiled per ISA for each storage type (LLAMA2_CPU_CLONES).

// One score tile z [rows, keys] (q·kᵀ), in place, folded into the online softmax of its rows: z·scale (+ mask),
// running max m and sum l per row, the row's unnormalised output o [rows, d] rescaled to the new max, and
// p = exp(z − max) into p (may be z itself). `first`: the row's first key tile (m, l, o not yet set).
template <typename T>
LLAMA2_CPU_CLONES void online_softmax_rows(Acc<T>* z, T* p, int64_t rows, int64_t keys, int64_t diagonal,
                                           Acc<T> scale, bool first, Acc<T>* m, Acc<T>* l, Acc<T>* o, int64_t d) {
  using A = Acc<T>;
  for (int64_t r = 0; r < rows; ++r) {
    A* zr = z + r * keys;
    T* pr = p + r * keys;
    scale_and_mask(zr, visible_keys(r, diagonal, keys), keys, scale);
    A max = first ? zr[0] : m[r], sum = 0;
#pragma omp simd reduction(max : max)
    for (int64_t i = 0; i < keys; ++i) max = max > zr[i] ? max : zr[i];
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < keys; ++i) {
      const A e = vector_exp(zr[i] - max);
      pr[i] = from_acc<T>(e);
      sum += e;
    }
    if (first) {
      l[r] = sum;
    } else {
      const A alpha = vector_exp(m[r] - max);
      l[r] = l[r] * alpha + sum;
      A* orow = o + r * d;
      for (int64_t k = 0; k < d; ++k) orow[k] *= alpha;
    }
    m[r] = max;
  }
}

// The backward's tile: z [rows, keys] (q·kᵀ) in place → p = exp(z·scale (+ mask) − lse), into z and into p_t
// (may be z itself) in the inputs' type for the GEMMs.
template <typename T>
LLAMA2_CPU_CLONES void probabilities_rows(Acc<T>* z, T* p_t, int64_t rows, int64_t keys, int64_t diagonal,
                                          Acc<T> scale, const Acc<T>* lse) {
  using A = Acc<T>;
  for (int64_t r = 0; r < rows; ++r) {
    A* zr = z + r * keys;
    T* pr = p_t + r * keys;
    scale_and_mask(zr, visible_keys(r, diagonal, keys), keys, scale);
    const A shift = lse[r];
#pragma omp simd
    for (int64_t i = 0; i < keys; ++i) {
      const A e = vector_exp(zr[i] - shift);
      zr[i] = e;
      pr[i] = from_acc<T>(e);
    }
  }
}

// The gradient of the scores: ds = p·(dp − D)·scale per row (D = Σ dO·O of the row), into ds_t (may be dp).
template <typename T>
LLAMA2_CPU_CLONES void scores_gradient_rows(const Acc<T>* p, Acc<T>* dp, T* ds_t, int64_t rows, int64_t keys,
                                            Acc<T> scale, const Acc<T>* D) {
  for (int64_t r = 0; r < rows; ++r) {
    const Acc<T>* pr = p + r * keys;
    Acc<T>* dr = dp + r * keys;
    T* sr = ds_t + r * keys;
    const Acc<T> dot = D[r];
#pragma omp simd
    for (int64_t i = 0; i < keys; ++i) sr[i] = from_acc<T>(pr[i] * (dr[i] - dot) * scale);
  }
}

// Per-worker tile buffers: z (scores, then probabilities) in Acc, and their copy in the inputs' type for the
// GEMMs (z itself when that type is Acc).
template <typename T>
struct Tiles {
  at::Tensor z, z_t;
  Tiles(int64_t workers, const at::TensorOptions& inputs) {
    const auto acc = inputs.dtype(c10::CppTypeToScalarType<Acc<T>>());
    z = at::empty({workers, kAttentionBlockRows, kAttentionBlockKeys}, acc);
    z_t = std::is_same_v<T, Acc<T>> ? z : at::empty(z.sizes(), inputs);
  }
};

// out [s, b, nq·d] ← softmax(q·kᵀ·scale + causal mask)·v; lse [groups, rep·s] ← each query row's log-sum-exp.
template <typename T>
void attention_forward(const Geometry& geo, const at::Tensor& q3, const at::Tensor& k3, const at::Tensor& v3,
                       Acc<T> scale, at::Tensor& out, at::Tensor& lse) {
  using A = Acc<T>;
  const int64_t heads = geo.groups * geo.rep, tasks = heads * geo.query_blocks(), workers = workers_for(tasks);
  const Tiles<T> tiles(workers, q3.options());
  const at::Tensor o = at::empty({workers, kAttentionBlockRows, geo.d}, lse.options());  // unnormalised output
  const at::Tensor stats = at::empty({workers, 2, kAttentionBlockRows}, lse.options());  // running max and sum
  for_each_task(tasks, workers, [&](int64_t t, int64_t w) {
    const int64_t block = geo.query_blocks() - 1 - t / heads, g = t % heads / geo.rep, h = t % geo.rep;
    const int64_t r0 = block * kAttentionBlockRows, rows = std::min(kAttentionBlockRows, geo.s - r0);
    const at::Tensor q = q3[g].narrow(0, h * geo.s + r0, rows);  // [rows, d]
    at::Tensor o_w = o[w].narrow(0, 0, rows);                   // [rows, d]
    A* m = stats[w][0].data_ptr<A>();
    A* l = stats[w][1].data_ptr<A>();
    for (int64_t j0 = 0; j0 < r0 + rows; j0 += kAttentionBlockKeys) {
      const int64_t keys = std::min(kAttentionBlockKeys, r0 + rows - j0);
      at::Tensor z = tile(tiles.z, w, rows, keys), p = tile(tiles.z_t, w, rows, keys);  // [rows, keys]
      matmul_into(q, false, k3[g].narrow(0, j0, keys), true, z, false);
      online_softmax_rows(z.data_ptr<A>(), p.data_ptr<T>(), rows, keys, r0 - j0, scale, j0 == 0, m, l,
                          o_w.data_ptr<A>(), geo.d);
      matmul_into(p, false, v3[g].narrow(0, j0, keys), false, o_w, j0 > 0);  // o (+)= p·v
    }
    const at::Tensor out_rows = head_rows(out, geo, g, h, r0, rows);
    T* y = out_rows.data_ptr<T>();
    const A* x = o_w.data_ptr<A>();
    A* lse_rows = lse[g].data_ptr<A>() + h * geo.s + r0;
    for (int64_t r = 0; r < rows; ++r) {
      const A inv = 1 / l[r];
      for (int64_t k = 0; k < geo.d; ++k) y[r * out_rows.stride(0) + k] = from_acc<T>(x[r * geo.d + k] * inv);
      lse_rows[r] = m[r] + std::log(l[r]);
    }
  });
}

// D [groups, rep·s]: Σ over d of d_out·out per query row (the softmax backward's row term).
template <typename T>
at::Tensor output_dots(const Geometry& geo, const at::Tensor& out, const at::Tensor& d_out,
                       const at::TensorOptions& acc) {
  using A = Acc<T>;
  at::Tensor D = at::empty({geo.groups, geo.rep * geo.s}, acc);
  at::parallel_for(0, geo.groups * geo.rep, 1, [&](int64_t begin, int64_t end) {
    for (int64_t gh = begin; gh < end; ++gh) {
      const int64_t g = gh / geo.rep, h = gh % geo.rep;
      const at::Tensor o = head_rows(out, geo, g, h, 0, geo.s), d_o = head_rows(d_out, geo, g, h, 0, geo.s);
      const T *op = o.data_ptr<T>(), *dp = d_o.data_ptr<T>();
      A* Dp = D[g].data_ptr<A>() + h * geo.s;
      for (int64_t r = 0; r < geo.s; ++r) {
        A dot = 0;
        for (int64_t k = 0; k < geo.d; ++k)
          dot += to_acc(op[r * o.stride(0) + k]) * to_acc(dp[r * o.stride(0) + k]);
        Dp[r] = dot;
      }
    }
  });
  return D;
}

// Gradients of q3, k3, v3. A task owns one key tile of one group: it walks every query tile that sees it (all
// rep heads), so d_k and d_v need no synchronisation; d_q sums into a buffer per worker.
template <typename T>
void attention_backward(const Geometry& geo, const at::Tensor& q3, const at::Tensor& k3, const at::Tensor& v3,
                        const at::Tensor& out, const at::Tensor& lse,
                        const at::Tensor& d_out, Acc<T> scale, at::Tensor& d_q, at::Tensor& d_k, at::Tensor& d_v) {
  using A = Acc<T>;
  const at::Tensor D = output_dots<T>(geo, out, d_out, lse.options());
  const int64_t tasks = geo.groups * geo.key_blocks(), workers = workers_for(tasks);
  const Tiles<T> tiles(workers, q3.options()), d_tiles(workers, q3.options());  // p; dp, then ds
  const at::Tensor d_kv = at::empty({workers, 2, kAttentionBlockKeys, geo.d}, lse.options());
  const at::Tensor d_q_parts = at::zeros({workers, geo.groups, geo.rep * geo.s, geo.d}, lse.options());
  for_each_task(tasks, workers, [&](int64_t t, int64_t w) {
    const int64_t j0 = t / geo.groups * kAttentionBlockKeys, g = t % geo.groups;
    const int64_t keys = std::min(kAttentionBlockKeys, geo.s - j0);
    at::Tensor d_k_w = d_kv[w][0].narrow(0, 0, keys).zero_(), d_v_w = d_kv[w][1].narrow(0, 0, keys).zero_();
    for (int64_t h = 0; h < geo.rep; ++h)
      for (int64_t r0 = j0 / kAttentionBlockRows * kAttentionBlockRows; r0 < geo.s; r0 += kAttentionBlockRows) {
        const int64_t rows = std::min(kAttentionBlockRows, geo.s - r0), seen = std::min(keys, r0 + rows - j0);
        const at::Tensor k = k3[g].narrow(0, j0, seen), v = v3[g].narrow(0, j0, seen);  // [seen, d]
        const at::Tensor q = q3[g].narrow(0, h * geo.s + r0, rows);                     // [rows, d]
        const at::Tensor d_o = head_rows(d_out, geo, g, h, r0, rows);                   // [rows, d]
        at::Tensor z = tile(tiles.z, w, rows, seen), p = tile(tiles.z_t, w, rows, seen);
        at::Tensor dp = tile(d_tiles.z, w, rows, seen), ds = tile(d_tiles.z_t, w, rows, seen);
        matmul_into(q, false, k, true, z, false);
        probabilities_rows(z.data_ptr<A>(), p.data_ptr<T>(), rows, seen, r0 - j0, scale,
                           lse[g].data_ptr<A>() + h * geo.s + r0);
        at::Tensor d_v_seen = d_v_w.narrow(0, 0, seen), d_k_seen = d_k_w.narrow(0, 0, seen);
        matmul_into(p, true, d_o, false, d_v_seen, true);  // d_v += pᵀ·d_out
        matmul_into(d_o, false, v, true, dp, false);       // dp = d_out·vᵀ
        scores_gradient_rows(z.data_ptr<A>(), dp.data_ptr<A>(), ds.data_ptr<T>(), rows, seen, scale,
                             D[g].data_ptr<A>() + h * geo.s + r0);
        matmul_into(ds, true, q, false, d_k_seen, true);  // d_k += dsᵀ·q
        at::Tensor d_q_rows = d_q_parts[w][g].narrow(0, h * geo.s + r0, rows);
        matmul_into(ds, false, k, false, d_q_rows, true);  // d_q += ds·k
      }
    d_k[g].narrow(0, j0, keys).copy_(d_k_w);
    d_v[g].narrow(0, j0, keys).copy_(d_v_w);
  });
  d_q.copy_(d_q_parts.sum(0));
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
      attention_forward<scalar_t>(geo, q3, k3, v3, static_cast<Acc<scalar_t>>(scale), out, lse);
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
    const at::Tensor d_out = grads[0].contiguous();  // [s, b, nq·d]
    at::Tensor d_q = at::empty_like(q3), d_k = at::empty_like(k3), d_v = at::empty_like(v3);
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, q3.scalar_type(), "attention_backward", [&] {
      attention_backward<scalar_t>(geo, q3, k3, v3, out, lse, d_out,
                                   static_cast<Acc<scalar_t>>(ctx->saved_data["scale"].toDouble()), d_q, d_k, d_v);
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
  // The rep query heads of one kv head fold into rows: [b, nkv, rep·n, d].
  const at::Tensor q4 = q.permute({1, 2, 0, 3}).reshape({b, nkv, rep * n, d}).to(acc);
  const at::Tensor keys = k_cache.narrow(2, 0, length).to(acc), values = v_cache.narrow(2, 0, length).to(acc);
  at::Tensor scores = at::matmul(q4, keys.transpose(2, 3)) / std::sqrt(static_cast<double>(d));  // [b, nkv, rep·n, L]
  const at::Tensor row_position = at::arange(n, at::kLong).repeat({rep}).add_(past).view({rep * n, 1});
  const at::Tensor masked = at::arange(length, at::kLong).view({1, length}) > row_position;  // [rep·n, L]
  scores.add_(masked.to(acc) * kMaskedScore);
  const at::Tensor out = at::matmul(scores.softmax(-1), values);                             // [b, nkv, rep·n, d]
  return out.view({b, nq, n, d}).permute({2, 0, 1, 3}).reshape({n, b, nq * d}).to(q.scalar_type());
}

}  // namespace llama2
