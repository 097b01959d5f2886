// oneDNN matmul with cached primitives.
#include "llama2/kernels/matmul.h"

#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dnnl.hpp>
#include <fmt/format.h>

#include "llama2/kernels/packed_weights.h"
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

// Key of a cached primitive: shapes, strides, dtypes, accumulation, whether b is read packed, and whether it
// runs inside a parallel region (oneDNN then runs it on the calling thread alone, and plans its work for one
// thread when created there).
using Key = std::tuple<Dims, Dims, Dims, Dims, Dims, int, int, bool, bool, bool>;

// A primitive and the scratchpad it needs. The caller provides the scratchpad (oneDNN's user mode): a
// primitive's own would be shared by every thread that runs it at once. `packed`: the layout of b it reads,
// when that is not b's own (a weight's packed copy).
struct Primitive {
  dnnl::matmul matmul;
  memory::desc scratchpad;
  std::optional<memory::desc> packed;
};

// The caller provides the scratchpad (user mode); with `accumulate` c += a·b (oneDNN's sum post-op).
dnnl::primitive_attr matmul_attributes(bool accumulate) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  return attr;
}

const Primitive& primitive(const Operand& a, const Operand& b, const Operand& c, memory::data_type dt,
                           memory::data_type c_dt, bool accumulate, bool pack_b) {
  static std::map<Key, Primitive> cache;
  static std::mutex cache_mutex;  // GEMMs may be called from several threads
  const Key key{a.dims, a.strides, b.dims, b.strides, c.strides, static_cast<int>(dt), static_cast<int>(c_dt),
                accumulate, pack_b, at::in_parallel_region()};
  const std::lock_guard<std::mutex> lock(cache_mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const memory::desc a_md(a.dims, dt, a.strides), b_md(b.dims, dt, b.strides);
  const memory::desc b_any(b.dims, dt, memory::format_tag::any), c_md(c.dims, c_dt, c.strides);
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, pack_b ? b_any : b_md, c_md),
                                        matmul_attributes(accumulate), cpu_engine());
  std::optional<memory::desc> packed;
  if (pack_b && pd.weights_desc() != b_md) packed = pd.weights_desc();
  return cache.emplace(key, Primitive{dnnl::matmul(pd), pd.scratchpad_desc(), packed}).first->second;
}

// A tile GEMM's shape, layout, types and whether it runs inside a parallel region.
struct TileKey {
  int64_t m, k, n, lda, ldb, ldc;
  bool transpose_a, transpose_b, packed_b, accumulate, in_parallel;
  TileType type, c_type;
  bool operator==(const TileKey& o) const {
    return std::tie(m, k, n, lda, ldb, ldc, transpose_a, transpose_b, packed_b, accumulate, in_parallel, type,
                    c_type) == std::tie(o.m, o.k, o.n, o.lda, o.ldb, o.ldc, o.transpose_a, o.transpose_b, o.packed_b,
                                        o.accumulate, o.in_parallel, o.type, o.c_type);
  }
};

struct TileKeyHash {
  size_t operator()(const TileKey& key) const {
    size_t h = 0;
    for (const int64_t v : {key.m, key.k, key.n, key.lda, key.ldb, key.ldc,
                            int64_t{key.transpose_a} | int64_t{key.transpose_b} << 1 | int64_t{key.accumulate} << 2 |
                                int64_t{key.in_parallel} << 3 | int64_t{key.packed_b} << 4 | int64_t(key.type) << 5 |
                                int64_t(key.c_type) << 7})
      h = h * 1000003 ^ std::hash<int64_t>()(v);
    return h;
  }
};

// One thread's primitive for a TileKey, with its memory objects (re-pointed each call) and scratchpad.
struct TilePrimitive {
  dnnl::matmul matmul;
  memory a, b, c, scratchpad;
  std::vector<char> scratch;
};

// 2-D, unlike matmul_into's batch-of-1 operands: as a batch of 1 the same tiles measured ~5% slower in core
// attention's backward (oneDNN plans 2-D and 3-D transposed sources differently).
memory::data_type tile_dnnl_type(TileType type) {
  return type == TileType::BF16 ? memory::data_type::bf16 : memory::data_type::f32;
}

memory::desc tile_desc(int64_t rows, int64_t cols, int64_t ld, bool transposed, TileType type) {
  const auto dt = tile_dnnl_type(type);
  return transposed ? memory::desc({cols, rows}, dt, {1, ld}) : memory::desc({rows, cols}, dt, {ld, 1});
}

// The layout packed_operands.h writes, in oneDNN's terms: BA16a64b (fp32), BA16a64b2a (bf16).
memory::desc packed_desc(int64_t rows, int64_t cols, TileType type) {
  return memory::desc({rows, cols}, tile_dnnl_type(type),
                      type == TileType::BF16 ? memory::format_tag::BA16a64b2a : memory::format_tag::BA16a64b);
}

// Whether oneDNN's matmul, free to choose b's layout, picks the packed one for core attention's two tile shapes.
bool chooses_packed_layout(TileType type) {
  for (const auto& [m, k, n] : {std::array<int64_t, 3>{128, 64, 512}, std::array<int64_t, 3>{128, 512, 64}}) {
    const memory::desc a = tile_desc(m, k, k, false, type), c = tile_desc(m, n, n, false, TileType::F32);
    const memory::desc b_any({k, n}, tile_dnnl_type(type), memory::format_tag::any);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b_any, c), cpu_engine());
    if (pd.weights_desc() != packed_desc(k, n, type)) return false;
  }
  return true;
}

TilePrimitive& tile_primitive(const TileKey& key) {
  thread_local std::unordered_map<TileKey, TilePrimitive, TileKeyHash> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const memory::desc a_md = tile_desc(key.transpose_a ? key.k : key.m, key.transpose_a ? key.m : key.k, key.lda,
                                      key.transpose_a, key.type);
  const memory::desc b_md = key.packed_b ? packed_desc(key.k, key.n, key.type)
                                          : tile_desc(key.transpose_b ? key.n : key.k, key.transpose_b ? key.k : key.n,
                                                      key.ldb, key.transpose_b, key.type);
  const memory::desc c_md = tile_desc(key.m, key.n, key.ldc, false, key.c_type);
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), matmul_attributes(key.accumulate),
                                        cpu_engine());
  TilePrimitive& tp = cache[key];
  tp.matmul = dnnl::matmul(pd);
  tp.a = memory(a_md, cpu_engine(), nullptr);
  tp.b = memory(b_md, cpu_engine(), nullptr);
  tp.c = memory(c_md, cpu_engine(), nullptr);
  tp.scratch.resize(pd.scratchpad_desc().get_size());
  tp.scratchpad = memory(pd.scratchpad_desc(), cpu_engine(), tp.scratch.data());
  return tp;
}

// The fp64 tile product by plain loops (gradient checks only: oneDNN has no f64 matmul).
void tile_matmul_f64(const TileOperand& a, const TileOperand& b, double* c, int64_t ldc, int64_t m, int64_t k,
                     int64_t n, bool accumulate) {
  const auto element = [](const TileOperand& x, int64_t i, int64_t j) {  // op(x)[i, j]
    const auto* data = static_cast<const double*>(x.data);
    return x.transposed ? data[j * x.ld + i] : data[i * x.ld + j];
  };
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = accumulate ? c[i * ldc + j] : 0.0;
      for (int64_t l = 0; l < k; ++l) sum += element(a, i, l) * element(b, l, j);
      c[i * ldc + j] = sum;
    }
}

}  // namespace

void tile_matmul(const TileOperand& a, const TileOperand& b, void* c, int64_t ldc, TileType c_type,
                 bool accumulate) {
  const int64_t m = a.transposed ? a.cols : a.rows, k = a.transposed ? a.rows : a.cols;
  const int64_t n = b.transposed ? b.rows : b.cols;
  const auto name = [](TileType t) { return t == TileType::F32 ? "fp32" : t == TileType::BF16 ? "bf16" : "fp64"; };
  if ((b.transposed ? b.cols : b.rows) != k || a.type != b.type || a.packed || (b.packed && b.transposed) ||
      (a.type == TileType::F64) != (c_type == TileType::F64))
    throw RuntimeFailure(fmt::format("tile_matmul: {} [{}, {}] by {} [{}, {}] does not multiply into {}", name(a.type),
                                     m, k, name(b.type), b.transposed ? b.cols : b.rows, n, name(c_type)));
  if (a.type == TileType::F64) return tile_matmul_f64(a, b, static_cast<double*>(c), ldc, m, k, n, accumulate);
  const TileKey key{m, k, n, a.ld, b.ld, ldc, a.transposed, b.transposed, b.packed, accumulate,
                    at::in_parallel_region(), a.type, c_type};
  TilePrimitive& tp = tile_primitive(key);
  tp.a.set_data_handle(const_cast<void*>(a.data));
  tp.b.set_data_handle(const_cast<void*>(b.data));
  tp.c.set_data_handle(c);
  thread_local dnnl::stream stream(cpu_engine());
  tp.matmul.execute(stream, {{DNNL_ARG_SRC, tp.a}, {DNNL_ARG_WEIGHTS, tp.b}, {DNNL_ARG_DST, tp.c},
                             {DNNL_ARG_SCRATCHPAD, tp.scratchpad}});
  stream.wait();
}

bool tile_packing(TileType type) {
  static const bool bf16 = chooses_packed_layout(TileType::BF16), f32 = chooses_packed_layout(TileType::F32);
  return type == TileType::BF16 ? bf16 : type == TileType::F32 && f32;
}

void matmul_into(const at::Tensor& a, bool transpose_a, const at::Tensor& b, bool transpose_b, at::Tensor& c,
                 bool accumulate, MatrixKind b_kind) {
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
  const bool pack_b = b_kind == MatrixKind::Weight && b.dim() == 2 && weight_packing();
  const Primitive& mm = primitive(oa, ob, oc, dt, c_dt, accumulate, pack_b);
  thread_local std::vector<char> scratch;  // this thread's scratchpad, grown to the largest asked for
  scratch.resize(std::max(scratch.size(), mm.scratchpad.get_size()));
  memory am({oa.dims, dt, oa.strides}, cpu_engine(), a.data_ptr());
  const memory::desc b_md(ob.dims, dt, ob.strides);
  memory bm = mm.packed ? packed_weight(b, transpose_b, b_md, *mm.packed, cpu_engine())
                        : memory(b_md, cpu_engine(), b.data_ptr());
  memory cm({oc.dims, c_dt, oc.strides}, cpu_engine(), c.data_ptr());
  dnnl::stream stream(cpu_engine());
  mm.matmul.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm},
                             {DNNL_ARG_SCRATCHPAD, memory(mm.scratchpad, cpu_engine(), scratch.data())}});
  stream.wait();
}

at::Tensor matmul(const at::Tensor& a, bool transpose_a, const at::Tensor& b, bool transpose_b, MatrixKind b_kind) {
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
  matmul_into(a, transpose_a, b, transpose_b, c, false, b_kind);
  return c;
}

}  // namespace llama2
