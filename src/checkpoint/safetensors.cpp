// safetensors writing (streamed, atomic) and reading (validated header, pread of tensors or ranges).
#include "llama2/checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "llama2/util/checksum.h"
#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"
#include "llama2/util/json_integer.h"

namespace llama2 {
namespace {

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "F32";
    case at::kBFloat16: return "BF16";
    case at::kHalf: return "F16";
    case at::kDouble: return "F64";
    case at::kLong: return "I64";
    default: throw RuntimeFailure(std::string("safetensors: unsupported dtype ") + c10::toString(t));
  }
}

// dtype name → (scalar type, bytes per element); nullopt-like {Undefined, 0} when unknown.
std::pair<at::ScalarType, int64_t> dtype_of(const std::string& name) {
  if (name == "F32") return {at::kFloat, 4};
  if (name == "BF16") return {at::kBFloat16, 2};
  if (name == "F16") return {at::kHalf, 2};
  if (name == "F64") return {at::kDouble, 8};
  if (name == "I64") return {at::kLong, 8};
  return {at::ScalarType::Undefined, 0};
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(std::map<std::string, std::string> metadata) : metadata_(std::move(metadata)) {}

void SafetensorsWriter::add(const std::string& name, const at::Tensor& t) {
  if (!t.is_contiguous()) throw RuntimeFailure("safetensors: tensor " + name + " is not contiguous");
  tensors_.emplace_back(name, t);
}

uint32_t SafetensorsWriter::write(const std::string& path) const {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors_) {
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", dtype_name(t.scalar_type())}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data buffer to 8 bytes
  const uint64_t length = text.size();
  AtomicFile file(path);
  uint32_t crc = crc32c(&length, 8);
  crc = crc32c(text.data(), text.size(), crc);
  file.write(&length, 8);
  file.write(text.data(), text.size());
  for (const auto& [name, t] : tensors_) {
    const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
    crc = crc32c(t.data_ptr(), bytes, crc);
    file.write(t.data_ptr(), bytes);
  }
  file.commit();
  return crc;
}

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw BadInput(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st{};
  ::fstat(fd_, &st);
  file_size_ = static_cast<uint64_t>(st.st_size);
  const auto bad = [&](const std::string& what) {
    ::close(fd_);
    fd_ = -1;
    throw BadInput(path + ": " + what);
  };
  uint64_t length = 0;
  if (file_size_ < 8 || ::pread(fd_, &length, 8, 0) != 8) bad("truncated: no 8-byte header length");
  if (length > file_size_ - 8 || length > (uint64_t{100} << 20))
    bad(fmt::format("header length {} exceeds the file ({} bytes)", length, file_size_));
  std::string text(length, '\0');
  if (::pread(fd_, text.data(), length, 8) != static_cast<ssize_t>(length)) bad("cannot read the header");
  data_start_ = 8 + length;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    bad(std::string("malformed JSON header (") + e.what() + ")");
  }
  if (!header.is_object()) bad("header is not a JSON object");
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& item : header.items()) {
    const std::string& name = item.key();
    const nlohmann::json& v = item.value();
    if (name == "__metadata__") {
      if (!v.is_object()) bad("__metadata__ is not an object");
      for (const auto& [k, value] : v.items())
        if (value.is_string()) metadata_[k] = value.get<std::string>();
      continue;
    }
    TensorEntry e;
    try {
      e.dtype = v.at("dtype").get<std::string>();
      const auto integers = [&](const char* key, int64_t lo, uint64_t hi) {
        const nlohmann::json& list = v.at(key);
        if (!list.is_array()) bad("tensor '" + name + "': " + key + " is not an array of integers");
        for (const auto& x : list)
          if (!json_integer_in(x, lo, hi)) bad("tensor '" + name + "': " + key + " holds " + x.dump() + "; expected integers ≥ 0");
      };
      integers("shape", 0, INT64_MAX);
      integers("data_offsets", 0, UINT64_MAX);
      e.shape = v.at("shape").get<std::vector<int64_t>>();
      const auto offsets = v.at("data_offsets").get<std::vector<uint64_t>>();
      if (offsets.size() != 2) bad("tensor '" + name + "': data_offsets must have 2 entries");
      e.begin = offsets[0];
      e.end = offsets[1];
    } catch (const nlohmann::json::exception& ex) {
      bad("tensor '" + name + "': malformed entry (" + ex.what() + ")");
    }
    const auto [type, width] = dtype_of(e.dtype);
    if (width == 0) bad("tensor '" + name + "': unsupported dtype " + e.dtype + "; expected F32, BF16, F16, F64 or I64");
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      if (d < 0 || (d > 0 && numel > (uint64_t{1} << 40) / static_cast<uint64_t>(d)))
        bad("tensor '" + name + "': invalid shape");
      numel *= static_cast<uint64_t>(d);
    }
    if (e.end < e.begin || e.end - e.begin != numel * static_cast<uint64_t>(width))
      bad(fmt::format("tensor '{}': data_offsets [{}, {}) do not hold {} elements of {}", name, e.begin, e.end, numel,
                      e.dtype));
    if (e.end > file_size_ - data_start_)
      bad(fmt::format("tensor '{}': data_offsets end {} beyond the data ({} bytes): truncated file", name, e.end,
                      file_size_ - data_start_));
    ranges.emplace_back(e.begin, e.end);
    entries_[name] = std::move(e);
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [b, e] : ranges) {
    if (b != covered) bad(fmt::format("data_offsets overlap or leave a hole at byte {}", std::min(b, covered)));
    covered = e;
  }
  if (covered != file_size_ - data_start_)
    bad(fmt::format("the tensors index {} bytes but the data holds {}", covered, file_size_ - data_start_));
}

SafetensorsReader::~SafetensorsReader() {
  if (fd_ >= 0) ::close(fd_);
}

const TensorEntry& SafetensorsReader::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) throw BadInput(path_ + ": tensor '" + name + "' is missing");
  return it->second;
}

at::Tensor SafetensorsReader::read_range(const std::string& name, int64_t offset, int64_t count) const {
  const TensorEntry& e = entry(name);
  const auto [type, width] = dtype_of(e.dtype);
  at::Tensor out = at::empty({count}, at::TensorOptions().dtype(type));
  const uint64_t start = data_start_ + e.begin + static_cast<uint64_t>(offset * width);
  if (offset < 0 || count < 0 || start + static_cast<uint64_t>(count * width) > data_start_ + e.end)
    throw BadInput(fmt::format("{}: tensor '{}': elements [{}, {}) out of range", path_, name, offset, offset + count));
  auto* p = static_cast<char*>(out.data_ptr());
  for (uint64_t done = 0, total = static_cast<uint64_t>(count * width); done < total;) {
    const ssize_t n = ::pread(fd_, p + done, total - done, static_cast<off_t>(start + done));
    if (n <= 0) throw RuntimeFailure(path_ + ": read failed (" + std::strerror(errno) + ")");
    done += static_cast<uint64_t>(n);
  }
  return out;
}

at::Tensor SafetensorsReader::read(const std::string& name) const {
  const TensorEntry& e = entry(name);
  int64_t numel = 1;
  for (int64_t d : e.shape) numel *= d;
  return read_range(name, 0, numel).view(e.shape);
}

uint32_t SafetensorsReader::file_crc32c() const {
  std::vector<char> buffer(size_t{8} << 20);
  uint32_t crc = 0;
  for (uint64_t offset = 0; offset < file_size_;) {
    const ssize_t n = ::pread(fd_, buffer.data(), std::min<uint64_t>(buffer.size(), file_size_ - offset),
                              static_cast<off_t>(offset));
    if (n <= 0) throw RuntimeFailure(path_ + ": read failed");
    crc = crc32c(buffer.data(), static_cast<size_t>(n), crc);
    offset += static_cast<uint64_t>(n);
  }
  return crc;
}

}  // namespace llama2
