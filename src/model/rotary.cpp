// Rotary embedding tables (computed as HF's LlamaRotaryEmbedding, fp32) and the fused QKV split + rotation.
#include "llama2/model/rotary.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <fmt/format.h>

#include "llama2/kernels/dtype_conversion.h"
#include "llama2/kernels/vector_math.h"
#include "llama2/util/errors.h"

namespace llama2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// y = x rotated by sign·θ: y[i] = x[i]·cos − sign·x[i+h]·sin, y[i+h] = x[i+h]·cos + sign·x[i]·sin
// (i < h = d/2; the tables repeat their first half). sign −1 is the transpose, i.e. the backward.
template <typename T>
LLAMA2_INLINE void rotate(const T* x, T* y, const float* cos, const float* sin, int64_t h, Acc<T> sign) {
#pragma omp simd
  for (int64_t i = 0; i < h; ++i) {
    const Acc<T> a = to_acc(x[i]), b = to_acc(x[i + h]), c = cos[i], s = sign * static_cast<Acc<T>>(sin[i]);
    y[i] = from_acc<T>(a * c - b * s);
    y[i + h] = from_acc<T>(b * c + a * s);
  }
}

struct Shape {
  int64_t s, b, nq, nkv, d;
};

// Moves (s, b) rows [begin, end) between qkv [s, b, (nq + 2nkv)·d] and q [b, nq, s, d], k, v [b, nkv, s, d]:
// forward qkv → heads rotated by +θ; otherwise heads → qkv rotated by −θ. Compiled per ISA for each type.
template <typename T>
LLAMA2_CPU_CLONES void exchange_rows(T* qkv, T* q, T* k, T* v, const float* cos, const float* sin, const Shape& x,
                                     bool forward, int64_t begin, int64_t end) {
  const int64_t d = x.d, h = d / 2, heads = x.nq + 2 * x.nkv;
  struct Group {
    T* split;              // q, k or v
    int64_t count, first;  // its heads, and the first of them in qkv's row
    bool rotated;
  };
  const Group groups[] = {{q, x.nq, 0, true}, {k, x.nkv, x.nq, true}, {v, x.nkv, x.nq + x.nkv, false}};
  for (int64_t row = begin; row < end; ++row) {
    const int64_t p = row / x.b, bi = row % x.b;
    const float *cos_p = cos + p * d, *sin_p = sin + p * d;
    for (const Group& g : groups)
      for (int64_t n = 0; n < g.count; ++n) {
        T* packed = qkv + (row * heads + g.first + n) * d;
        T* split = g.split + ((bi * g.count + n) * x.s + p) * d;
        if (!g.rotated) {
          forward ? std::copy(packed, packed + d, split) : std::copy(split, split + d, packed);
        } else {
          forward ? rotate<T>(packed, split, cos_p, sin_p, h, 1) : rotate<T>(split, packed, cos_p, sin_p, h, -1);
        }
      }
  }
}

template <typename T>
void exchange(T* qkv, T* q, T* k, T* v, const at::Tensor& cos, const at::Tensor& sin, const Shape& x, bool forward) {
  at::parallel_for(0, x.s * x.b, 16, [&](int64_t begin, int64_t end) {
    exchange_rows<T>(qkv, q, k, v, cos.data_ptr<float>(), sin.data_ptr<float>(), x, forward, begin, end);
  });
}

class RotaryQkv : public torch::autograd::Function<RotaryQkv> {
 public:
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& qkv, int64_t nq, int64_t nkv,
                             const at::Tensor& cos, const at::Tensor& sin) {
    const Shape x{qkv.size(0), qkv.size(1), nq, nkv, qkv.size(2) / (nq + 2 * nkv)};
    at::Tensor q = at::empty({x.b, nq, x.s, x.d}, qkv.options());
    at::Tensor k = at::empty({x.b, nkv, x.s, x.d}, qkv.options()), v = at::empty_like(k);
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, qkv.scalar_type(), "rotary_qkv_forward", [&] {
      exchange<scalar_t>(qkv.data_ptr<scalar_t>(), q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(),
                         v.data_ptr<scalar_t>(), cos, sin, x, true);
    });
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["shape"] = std::vector<int64_t>{x.s, x.b, nq, nkv, x.d};
    const auto seq_major = [](const at::Tensor& t) { return t.permute({2, 0, 1, 3}); };  // [s, b, n, d]
    return {seq_major(q), seq_major(k), seq_major(v)};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const std::vector<int64_t> dims = ctx->saved_data["shape"].toIntVector();
    const Shape x{dims[0], dims[1], dims[2], dims[3], dims[4]};
    const auto head_major = [](const at::Tensor& g) { return g.permute({1, 2, 0, 3}).contiguous(); };
    const at::Tensor d_q = head_major(grads[0]), d_k = head_major(grads[1]), d_v = head_major(grads[2]);
    at::Tensor d_qkv = at::empty({x.s, x.b, (x.nq + 2 * x.nkv) * x.d}, d_q.options());
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, d_q.scalar_type(), "rotary_qkv_backward", [&] {
      exchange<scalar_t>(d_qkv.data_ptr<scalar_t>(), d_q.data_ptr<scalar_t>(), d_k.data_ptr<scalar_t>(),
                         d_v.data_ptr<scalar_t>(), saved[0], saved[1], x, false);
    });
    return {d_qkv, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

RotaryTables RotaryTables::make(int64_t seq_len, int64_t head_dim, double theta) {
  const at::Tensor inv_freq =
      1.0 / at::pow(theta, at::arange(0, head_dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(head_dim));
  const at::Tensor freqs = at::outer(at::arange(seq_len, at::kLong).to(at::kFloat), inv_freq);  // [s, d/2]
  const at::Tensor angles = at::cat({freqs, freqs}, -1);                                         // [s, d]
  return {angles.cos(), angles.sin()};
}

RotaryTables RotaryTables::positions(int64_t first, int64_t count) const {
  if (first + count > cos.size(0))
    throw RuntimeFailure(fmt::format("rotary: positions up to {}, but the tables were made for {}", first + count,
                                     cos.size(0)));
  return {cos.narrow(0, first, count), sin.narrow(0, first, count)};
}

QkvHeads rotary_qkv(const at::Tensor& qkv, int64_t nq, int64_t nkv, const RotaryTables& tables) {
  if (qkv.size(0) > tables.cos.size(0))
    throw RuntimeFailure(fmt::format("rotary_qkv: {} positions, but the tables were made for {}", qkv.size(0),
                                     tables.cos.size(0)));
  const tensor_list out = RotaryQkv::apply(qkv.contiguous(), nq, nkv, tables.cos, tables.sin);
  return {out[0], out[1], out[2]};
}

}  // namespace llama2
