// Owns the GGUF v3 container llama.cpp reads (header, typed metadata, tensor infos, 32-byte aligned data), written
// tensor by tensor, and the tensor encodings f32, f16, bf16 and q8_0 (blocks of 32 values with an f16 scale).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace at {
class Tensor;
}

namespace llama2 {

class AtomicFile;

// ggml's numbers for the tensor types written here.
enum class GgmlType : uint32_t { f32 = 0, f16 = 1, q8_0 = 8, bf16 = 30 };

constexpr int64_t kQ8Block = 32;  // values per q8_0 block: an f16 scale d, then 32 int8 q with value = d * q

// Bytes of `numel` values of `type` (q8_0: numel a multiple of kQ8Block).
int64_t ggml_bytes(GgmlType type, int64_t numel);

// `values` (fp32, contiguous, rows along the last dimension) in `type`'s encoding; q8_0 rounds as llama.cpp's
// reference quantizer does: d = max|x| / 127 per block, q = round(x / d).
std::vector<uint8_t> ggml_encode(const at::Tensor& values, GgmlType type);

using GgufValue = std::variant<uint32_t, int32_t, float, bool, std::string, std::vector<std::string>,
                               std::vector<float>, std::vector<int32_t>>;

class GgufWriter {
 public:
  // Creates `path` through a temporary file: it appears whole at finish(), or not at all.
  explicit GgufWriter(const std::string& path);
  ~GgufWriter();

  void add_metadata(const std::string& key, GgufValue value);
  // Declares the next tensor: `shape` in PyTorch's order (outermost first; GGUF stores it reversed).
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type);
  // Writes the header (on the first call), then the next declared tensor's data, encoded to its type.
  void write_tensor(const at::Tensor& values);
  // Checks every declared tensor was written and publishes the file. Returns its size in bytes.
  int64_t finish();

 private:
  struct TensorInfo {
    std::string name;
    std::vector<int64_t> shape;
    GgmlType type;
  };
  void write_header();
  void write_bytes(const void* data, size_t n);
  void pad_to_alignment();

  std::unique_ptr<AtomicFile> file_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<TensorInfo> tensors_;
  size_t next_tensor_ = 0;
  bool header_written_ = false;
  int64_t written_ = 0;
};

}  // namespace llama2
