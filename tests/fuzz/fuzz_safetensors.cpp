// Fuzzes the safetensors reader: every tensor an accepted header lists must read back whole and by
// range with the byte count its header gives.
#include <ATen/ATen.h>

#include "fuzz_input.h"
#include "llama2/checkpoint/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llama2;
  const std::string path = fuzz::write_input("fuzz.safetensors", data, size);
  fuzz::expect_clear_outcome([&] {
    const SafetensorsReader reader(path);
    for (const auto& [name, entry] : reader.entries()) {
      const at::Tensor t = reader.read(name);
      if (static_cast<uint64_t>(t.numel() * t.element_size()) != entry.end - entry.begin) std::abort();
      const int64_t head = std::min<int64_t>(t.numel(), 3);
      if (reader.read_range(name, t.numel() - head, head).numel() != head) std::abort();
    }
    reader.file_crc32c();
  });
  return 0;
}
