// GGUF v3: "GGUF", version, counts, metadata (key, type, value), tensor infos (name, dims innermost first, type,
// offset), zero padding to the alignment, then each tensor's data at its aligned offset.
#include "llama2/checkpoint/gguf.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <ATen/ATen.h>
#include <c10/util/Half.h>
#include <fmt/format.h>

#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"

namespace llama2 {
namespace {

constexpr uint32_t kGgufVersion = 3;
constexpr int64_t kAlignment = 32;  // general.alignment's default

// GGUF's metadata value types.
enum class GgufType : uint32_t { uint32 = 4, int32 = 5, float32 = 6, boolean = 7, string = 8, array = 9 };

int64_t aligned(int64_t offset) { return (offset + kAlignment - 1) / kAlignment * kAlignment; }

// Little-endian serialisation into a byte string (the header is built whole, then written once).
struct Bytes {
  std::string out;
  template <typename T>
  void put(T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out += s;
  }
  void put_type(GgufType t) { put<uint32_t>(static_cast<uint32_t>(t)); }
  template <typename T>
  void put_array(GgufType element, const std::vector<T>& values) {
    put_type(GgufType::array);
    put_type(element);
    put<uint64_t>(values.size());
    for (const T& v : values) {
      if constexpr (std::is_same_v<T, std::string>)
        put_string(v);
      else
        put<T>(v);
    }
  }
  void put_value(const GgufValue& value) {
    if (const auto* v = std::get_if<uint32_t>(&value)) put_type(GgufType::uint32), put(*v);
    if (const auto* v = std::get_if<int32_t>(&value)) put_type(GgufType::int32), put(*v);
    if (const auto* v = std::get_if<float>(&value)) put_type(GgufType::float32), put(*v);
    if (const auto* v = std::get_if<bool>(&value)) put_type(GgufType::boolean), put<uint8_t>(*v ? 1 : 0);
    if (const auto* v = std::get_if<std::string>(&value)) put_type(GgufType::string), put_string(*v);
    if (const auto* v = std::get_if<std::vector<std::string>>(&value)) put_array(GgufType::string, *v);
    if (const auto* v = std::get_if<std::vector<float>>(&value)) put_array(GgufType::float32, *v);
    if (const auto* v = std::get_if<std::vector<int32_t>>(&value)) put_array(GgufType::int32, *v);
  }
};

// llama.cpp's reference q8_0: per block of 32, d = max|x| / 127 (stored in f16), q = round(x / d).
std::vector<uint8_t> encode_q8_0(const float* x, int64_t n) {
  std::vector<uint8_t> out(static_cast<size_t>(ggml_bytes(GgmlType::q8_0, n)));
  uint8_t* block = out.data();
  for (int64_t b = 0; b < n; b += kQ8Block, block += 2 + kQ8Block) {
    float amax = 0;
    for (int64_t j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const float d = amax / 127.0f, inverse = d != 0 ? 1.0f / d : 0.0f;
    const uint16_t d_bits = c10::Half(d).x;
    std::memcpy(block, &d_bits, 2);
    for (int64_t j = 0; j < kQ8Block; ++j)
      block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[b + j] * inverse)));
  }
  return out;
}

}  // namespace

int64_t ggml_bytes(GgmlType type, int64_t numel) {
  switch (type) {
    case GgmlType::f32: return 4 * numel;
    case GgmlType::f16:
    case GgmlType::bf16: return 2 * numel;
    case GgmlType::q8_0: return numel / kQ8Block * (2 + kQ8Block);
  }
  throw RuntimeFailure("ggml_bytes: unknown type");
}

std::vector<uint8_t> ggml_encode(const at::Tensor& values, GgmlType type) {
  const at::Tensor x = values.to(at::kFloat).contiguous();
  if (type == GgmlType::q8_0) {
    if (x.dim() == 0 || x.size(-1) % kQ8Block != 0)
      throw RuntimeFailure(fmt::format("q8_0 needs rows of a multiple of {} values", kQ8Block));
    return encode_q8_0(x.data_ptr<float>(), x.numel());
  }
  const at::Tensor typed = type == GgmlType::f16 ? x.to(at::kHalf) : type == GgmlType::bf16 ? x.to(at::kBFloat16) : x;
  const auto* p = static_cast<const uint8_t*>(typed.data_ptr());
  return std::vector<uint8_t>(p, p + typed.nbytes());
}

GgufWriter::GgufWriter(const std::string& path) : file_(std::make_unique<AtomicFile>(path)) {}

GgufWriter::~GgufWriter() = default;

void GgufWriter::add_metadata(const std::string& key, GgufValue value) {
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type) {
  tensors_.push_back({name, shape, type});
}

void GgufWriter::write_header() {
  Bytes h;
  h.out = "GGUF";
  h.put<uint32_t>(kGgufVersion);
  h.put<uint64_t>(tensors_.size());
  h.put<uint64_t>(metadata_.size() + 1);
  h.put_string("general.alignment");
  h.put_value(static_cast<uint32_t>(kAlignment));
  for (const auto& [key, value] : metadata_) {
    h.put_string(key);
    h.put_value(value);
  }
  int64_t offset = 0;
  for (const TensorInfo& t : tensors_) {
    h.put_string(t.name);
    h.put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    int64_t numel = 1;
    for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) h.put<uint64_t>(static_cast<uint64_t>(*d)), numel *= *d;
    h.put<uint32_t>(static_cast<uint32_t>(t.type));
    h.put<uint64_t>(static_cast<uint64_t>(offset));
    offset = aligned(offset + ggml_bytes(t.type, numel));
  }
  write_bytes(h.out.data(), h.out.size());
  pad_to_alignment();
  header_written_ = true;
}

void GgufWriter::write_bytes(const void* data, size_t n) {
  file_->write(data, n);
  written_ += static_cast<int64_t>(n);
}

void GgufWriter::pad_to_alignment() {
  static const char zeros[kAlignment] = {};
  write_bytes(zeros, static_cast<size_t>(aligned(written_) - written_));
}

void GgufWriter::write_tensor(const at::Tensor& values) {
  if (!header_written_) write_header();
  if (next_tensor_ >= tensors_.size()) throw RuntimeFailure("GgufWriter: more tensors written than declared");
  const TensorInfo& t = tensors_[next_tensor_++];
  if (values.sizes().vec() != t.shape)
    throw RuntimeFailure(fmt::format("GgufWriter: tensor '{}' is [{}], declared [{}]", t.name,
                                     fmt::join(values.sizes(), ", "), fmt::join(t.shape, ", ")));
  const std::vector<uint8_t> data = ggml_encode(values, t.type);
  write_bytes(data.data(), data.size());
  pad_to_alignment();
}

int64_t GgufWriter::finish() {
  if (!header_written_) write_header();
  if (next_tensor_ != tensors_.size())
    throw RuntimeFailure(fmt::format("GgufWriter: {} of {} tensors written", next_tensor_, tensors_.size()));
  file_->commit();
  return written_;
}

}  // namespace llama2
