// Packed weight copies, keyed by weight and orientation, refreshed by the weight's version counter.
#include "llama2/kernels/packed_weights.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace llama2 {
namespace {

struct PackedCopy {
  c10::weak_intrusive_ptr<c10::StorageImpl> storage;  // the weight's: another weight at a freed one's address is not it
  int64_t version;                                    // the weight's version counter when copied
  dnnl::memory::desc layout;
  dnnl::memory copy;
};

struct PackedCache {
  std::mutex mutex;
  // By the weight's address and orientation: one copy per layout (GEMMs of other shapes may ask for another).
  std::map<std::pair<const void*, bool>, std::vector<PackedCopy>> copies;
  bool enabled = false;
};

PackedCache& cache() {
  static PackedCache instance;
  return instance;
}

// Drops the copies of weights that no longer exist.
void forget_freed_weights(PackedCache& c) {
  for (auto it = c.copies.begin(); it != c.copies.end();) {
    auto& copies = it->second;
    copies.erase(std::remove_if(copies.begin(), copies.end(), [](const PackedCopy& p) { return p.storage.expired(); }),
                 copies.end());
    it = copies.empty() ? c.copies.erase(it) : std::next(it);
  }
}

}  // namespace

bool amx_available() { return dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core_amx; }

bool resolve_weight_packing(const std::string& mode, bool bf16) {
  return mode == "auto" ? bf16 && amx_available() : mode == "on";
}

bool weight_packing() { return cache().enabled; }

void set_weight_packing(bool on) {
  PackedCache& c = cache();
  const std::lock_guard<std::mutex> lock(c.mutex);
  c.enabled = on;
  if (!on) c.copies.clear();
}

dnnl::memory packed_weight(const at::Tensor& w, bool transposed, const dnnl::memory::desc& plain,
                           const dnnl::memory::desc& packed, const dnnl::engine& engine) {
  PackedCache& c = cache();
  const std::lock_guard<std::mutex> lock(c.mutex);
  const std::pair<const void*, bool> key{w.data_ptr(), transposed};
  const c10::StorageImpl* storage = w.storage().unsafeGetStorageImpl();
  const auto of_w = [&](const PackedCopy& p) {
    return p.layout == packed && !p.storage.expired() && p.storage._unsafe_get_target() == storage;
  };
  const auto found = c.copies.find(key);
  if (found != c.copies.end())
    for (const PackedCopy& p : found->second)
      if (of_w(p) && p.version == w._version()) return p.copy;
  forget_freed_weights(c);  // also a freed weight's copies under this address
  std::vector<PackedCopy>& copies = c.copies[key];
  auto p = std::find_if(copies.begin(), copies.end(), of_w);
  if (p == copies.end()) {
    copies.push_back(PackedCopy{w.storage().getWeakStorageImpl(), -1, packed, dnnl::memory(packed, engine)});
    p = std::prev(copies.end());
  }
  dnnl::memory source(plain, engine, w.data_ptr());
  dnnl::stream stream(engine);
  dnnl::reorder(source, p->copy).execute(stream, source, p->copy);
  stream.wait();
  p->version = w._version();
  return p->copy;
}

int64_t packed_weight_bytes() {
  PackedCache& c = cache();
  const std::lock_guard<std::mutex> lock(c.mutex);
  int64_t bytes = 0;
  for (const auto& [key, copies] : c.copies)
    for (const PackedCopy& p : copies) bytes += static_cast<int64_t>(p.layout.get_size());
  return bytes;
}

}  // namespace llama2
