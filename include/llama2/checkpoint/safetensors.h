// Owns the safetensors format (8-byte little-endian header length, JSON header of
// name → {dtype, shape, data_offsets}, then the byte buffer, fully indexed with no holes) for
// checkpoint shards and Hugging Face export/import. Writing streams tensor by tensor; reading is by
// tensor or by element range, validated against the file size.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace llama2 {

class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::map<std::string, std::string> metadata = {});
  // Keeps a reference to `t` (contiguous; F32, BF16, F16, F64 or I64) until write().
  void add(const std::string& name, const at::Tensor& t);
  // Writes atomically (temporary file, fsync, rename), one tensor at a time; returns the file's CRC-32C.
  uint32_t write(const std::string& path) const;

 private:
  std::map<std::string, std::string> metadata_;
  std::vector<std::pair<std::string, at::Tensor>> tensors_;
};

struct TensorEntry {
  std::string dtype;           // "F32", "BF16", "F16", "F64", "I64"
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data buffer
};

class SafetensorsReader {
 public:
  // Parses and validates the header against the file size.
  // Throws BadInput naming the file and the problem.
  explicit SafetensorsReader(const std::string& path);
  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  const TensorEntry& entry(const std::string& name) const;  // BadInput if absent
  const std::map<std::string, TensorEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The whole tensor, in its stored dtype.
  at::Tensor read(const std::string& name) const;
  // Elements [offset, offset + count) of the flattened tensor, 1-D.
  at::Tensor read_range(const std::string& name, int64_t offset, int64_t count) const;
  uint32_t file_crc32c() const;  // reads the whole file
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t data_start_ = 0, file_size_ = 0;
  std::map<std::string, TensorEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace llama2
