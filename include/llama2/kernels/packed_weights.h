// Owns the weights' copies in the layout oneDNN's matmul prefers for them (--pack_weights): one per weight and
// orientation, made by a reorder when the weight changes and reused by every GEMM until then.
#pragma once
#include <cstdint>
#include <string>

#include <dnnl.hpp>

namespace at {
class Tensor;
}

namespace llama2 {

// Whether oneDNN runs bf16 GEMMs on AMX on this CPU.
bool amx_available();

// --pack_weights: "on", "off", or "auto" (on for bf16 where amx_available(): AMX kernels read weights fastest in
// their own blocked layout; off elsewhere, where the layouts measured within a few percent of each other and
// the copies would only cost memory) → whether the weights' GEMMs use packed copies.
bool resolve_weight_packing(const std::string& mode, bool bf16);

// Whether the weights' GEMMs use packed copies; off until set at start-up.
bool weight_packing();
void set_weight_packing(bool on);

// w's copy in layout `packed` (`plain`: w's own layout as the GEMM reads it, transposed or not): the cached copy
// while w's storage, version counter and the layout are unchanged, else a fresh reorder. Whoever writes weights
// through raw pointers bumps their version (at::Tensor's in-place ops do it themselves).
dnnl::memory packed_weight(const at::Tensor& w, bool transposed, const dnnl::memory::desc& plain,
                           const dnnl::memory::desc& packed, const dnnl::engine& engine);

// The bytes the packed copies hold now.
int64_t packed_weight_bytes();

}  // namespace llama2
