// oneDNN matmul with cached primitives, and the differentiable linear built on it.
#include "llama2/kernels/matmul.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <dnnl.hpp>
#include <fmt/format.h>

#include "llama2/util/errors.h"
#include "llama2/util/phases.h"

namespace llama2 {
namespace {

using dnnl::memory;
using Dims = memory::dims;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

memory::data_type dnnl_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return memory::data_type::f32;
    case at::kBFloat16: return memory::data_type::bf16;
    default: throw RuntimeFailure(fmt::format("matmul: unsupported dtype {}", c10::toString(t.scalar_type())));
  }
}

// Logical [batch, rows, cols] of op(x) and its strides into x's storage. Rows must be contiguous
// (stride(-1) == 1); the row and batch strides are free, so narrowed views need no copy.
struct Operand {
  Dims dims, strides;
};

bool rows_contiguous(const at::Tensor& x) {
  return x.dim() >= 2 && x.dim() <= 3 && (x.stride(-1) == 1 || x.size(-1) == 1) &&
         (x.stride(-2) >= x.size(-1) || x.size(-2) == 1);
}

Operand operand(const at::Tensor& x, bool transpose) {
  const int64_t batch = x.dim() == 3 ? x.size(0) : 1;
  const int64_t r = x.size(-2), c = x.size(-1), ld = r == 1 ? c : x.stride(-2);
  const int64_t batch_stride = x.dim() == 3 ? x.stride(0) : r * ld;
  if (!transpose) return {{batch, r, c}, {batch_stride, ld, 1}};
  return {{batch, c, r}, {batch_stride, 1, ld}};
}

// Key of a cached primitive: shapes, strides, dtypes, accumulation, and whether it runs inside a parallel
// region (oneDNN then runs it on the calling thread alone, and plans its work for one thread when created there).
using Key = std::tuple<Dims, Dims, Dims, Dims, Dims, int, int, bool, bool>;

// A primitive and the scratchpad it needs. The caller provides the scratchpad (oneDNN's user mode): a
// primitive's own would be shared by every thread that runs it at once (core attention does).
struct Primitive {
  dnnl::matmul matmul;
  memory::desc scratchpad;
};

const Primitive& primitive(const Operand& a, const Operand& b, const Operand& c, memory::data_type dt,
                           memory::data_type c_dt, bool accumulate) {
  static std::map<Key, Primitive> cache;
  static std::mutex cache_mutex;  // core attention runs GEMMs from several threads
  const Key key{a.dims, a.strides, b.dims, b.strides, c.strides, static_cast<int>(dt), static_cast<int>(c_dt),
                accumulate, at::in_parallel_region()};
  const std::lock_guard<std::mutex> lock(cache_mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const memory::desc a_md(a.dims, dt, a.strides), b_md(b.dims, dt, b.strides);
  const memory::desc c_md(c.dims, c_dt, c.strides);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (accumulate) {  // c += a·b: oneDNN's sum post-op
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, cpu_engine());
  return cache.emplace(key, Primitive{dnnl::matmul(pd), pd.scratchpad_desc()}).first->second;
}

class LinearFunction : public torch::autograd::Function<LinearFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w) {
    ScopedPhase phase(Phase::Gemm);
    ctx->save_for_backward({x, w});
    // dW goes straight into the weight's gradient buffer when it has one: no temporary, no accumulation pass.
    ctx->saved_data["dw"] = w.scalar_type() == at::kDouble ? at::Tensor() : gradient_accumulator(w);
    const at::Tensor x2 = x.reshape({-1, x.size(-1)});  // [m, in]
    auto out_sizes = x.sizes().vec();
    out_sizes.back() = w.size(0);
    return llama2::matmul(x2, false, w, true).view(out_sizes);  // [..., out]
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    ScopedPhase phase(Phase::Gemm);
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w = saved[1];                                           // [out, in]
    const at::Tensor dy = grads[0].contiguous().view({-1, w.size(0)});       // [m, out]
    const at::Tensor dx = llama2::matmul(dy, false, w, false).view(x.sizes());       // [m, in]
    const at::Tensor x2 = x.reshape({-1, x.size(-1)});
    at::Tensor dw_buffer = ctx->saved_data["dw"].toTensor();
    if (dw_buffer.defined()) {
      matmul_into(dy, true, x2, false, dw_buffer, true);  // .grad += dy^T @ x
      return {dx, at::Tensor()};
    }
    return {dx, llama2::matmul(dy, true, x2, false)};  // [out, in]
  }
};

}  // namespace

at::Tensor gradient_accumulator(const at::Tensor& w) {
  const at::Tensor& grad = w.grad();
  const bool direct = grad.defined() && grad.is_contiguous() &&
                      (grad.scalar_type() == w.scalar_type() || grad.scalar_type() == at::kFloat);
  return direct ? grad : at::Tensor();
}

void matmul_into(const at::Tensor& a, bool transpose_a, const at::Tensor& b, bool transpose_b, at::Tensor& c,
                 bool accumulate) {
  if (!rows_contiguous(c) || c.dim() != a.dim())
    throw RuntimeFailure(fmt::format("matmul_into: expected a {}-D destination with contiguous rows, got {}", a.dim(),
                                     c10::str(c.sizes())));
  if (a.scalar_type() == at::kDouble) {  // fp64 (gradient checks only): oneDNN has no f64 matmul
    const at::Tensor r = matmul(a, transpose_a, b, transpose_b);
    accumulate ? c.add_(r) : c.copy_(r);
    return;
  }
  const Operand oa = operand(a, transpose_a), ob = operand(b, transpose_b), oc = operand(c, false);
  if (oc.dims != Dims{oa.dims[0], oa.dims[1], ob.dims[2]})
    throw RuntimeFailure(fmt::format("matmul_into: destination {} does not fit the product", c10::str(c.sizes())));
  const memory::data_type dt = dnnl_type(a), c_dt = dnnl_type(c);
  const Primitive& mm = primitive(oa, ob, oc, dt, c_dt, accumulate);
  thread_local std::vector<char> scratch;  // this thread's scratchpad, grown to the largest asked for
  scratch.resize(std::max(scratch.size(), mm.scratchpad.get_size()));
  memory am({oa.dims, dt, oa.strides}, cpu_engine(), a.data_ptr());
  memory bm({ob.dims, dt, ob.strides}, cpu_engine(), b.data_ptr());
  memory cm({oc.dims, c_dt, oc.strides}, cpu_engine(), c.data_ptr());
  dnnl::stream stream(cpu_engine());
  mm.matmul.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm},
                             {DNNL_ARG_SCRATCHPAD, memory(mm.scratchpad, cpu_engine(), scratch.data())}});
  stream.wait();
}

at::Tensor matmul(const at::Tensor& a, bool transpose_a, const at::Tensor& b, bool transpose_b) {
  if (!rows_contiguous(a) || !rows_contiguous(b) || a.dim() != b.dim() || a.scalar_type() != b.scalar_type())
    throw RuntimeFailure(fmt::format("matmul: expected 2-D or 3-D operands of one dtype with contiguous rows, got "
                                     "{} and {}", c10::str(a.sizes()), c10::str(b.sizes())));
  const Operand oa = operand(a, transpose_a), ob = operand(b, transpose_b);
  if (oa.dims[2] != ob.dims[1] || oa.dims[0] != ob.dims[0])
    throw RuntimeFailure(fmt::format("matmul: shapes {} and {} do not multiply", c10::str(a.sizes()),
                                     c10::str(b.sizes())));
  if (a.scalar_type() == at::kDouble)  // fp64 (gradient checks only): oneDNN has no f64 matmul
    return at::matmul(transpose_a ? a.transpose(-1, -2) : a, transpose_b ? b.transpose(-1, -2) : b);
  at::Tensor c = at::empty(a.dim() == 3 ? std::vector<int64_t>{oa.dims[0], oa.dims[1], ob.dims[2]}
                                        : std::vector<int64_t>{oa.dims[1], ob.dims[2]},
                           a.options());
  matmul_into(a, transpose_a, b, transpose_b, c, false);
  return c;
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w) {
  return LinearFunction::apply(x.contiguous(), w);
}

double measure_gemm_flops(int64_t m, int64_t k, int64_t n, int repeats, bool bf16, double min_seconds,
                          int64_t batch) {
  const auto shape = [&](int64_t rows, int64_t cols) {
    return batch > 1 ? std::vector<int64_t>{batch, rows, cols} : std::vector<int64_t>{rows, cols};
  };
  const auto dtype = bf16 ? at::kBFloat16 : at::kFloat;
  const at::Tensor a = at::randn(shape(m, k)).to(dtype), b = at::randn(shape(n, k)).to(dtype);
  llama2::matmul(a, false, b, true);  // warm-up: primitive creation, page faults
  double best_s = 1e30, total_s = 0;
  for (int i = 0; i < repeats || total_s < min_seconds; ++i) {
    const auto start = std::chrono::steady_clock::now();
    llama2::matmul(a, false, b, true);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best_s = std::min(best_s, seconds);
    total_s += seconds;
  }
  return 2.0 * batch * m * k * n / best_s;
}

}  // namespace llama2
