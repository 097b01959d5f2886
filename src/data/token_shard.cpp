// Token shards: write with a checked header, memory-map and validate on read; index.json.
#include "llama2/data/token_shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "llama2/util/checksum.h"
#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"
#include "llama2/util/json_integer.h"

namespace llama2 {
namespace {

template <typename T>
void put(unsigned char* header, size_t offset, T value) {
  std::memcpy(header + offset, &value, sizeof(T));
}
template <typename T>
T get(const unsigned char* header, size_t offset) {
  T value;
  std::memcpy(&value, header + offset, sizeof(T));
  return value;
}

}  // namespace

void write_shard(const std::string& path, const std::vector<uint32_t>& tokens, int64_t vocab_size,
                 int64_t documents) {
  const uint32_t token_bytes = vocab_size <= 65536 ? 2 : 4;
  std::vector<unsigned char> body(tokens.size() * token_bytes);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (token_bytes == 2) put<uint16_t>(body.data(), 2 * i, static_cast<uint16_t>(tokens[i]));
    else put<uint32_t>(body.data(), 4 * i, tokens[i]);
  }
  unsigned char header[kShardHeaderBytes] = {0};
  std::memcpy(header, kShardMagic, 8);
  put<uint32_t>(header, 8, kShardVersion);
  put<uint32_t>(header, 12, token_bytes);
  put<uint64_t>(header, 16, static_cast<uint64_t>(vocab_size));
  put<uint64_t>(header, 24, tokens.size());
  put<uint64_t>(header, 32, static_cast<uint64_t>(documents));
  put<uint32_t>(header, 40, crc32c(body.data(), body.size()));
  put<uint32_t>(header, 44, crc32c(header, 44));
  AtomicFile file(path);
  file.write(header, sizeof(header));
  file.write(body.data(), body.size());
  file.commit();
}

MappedShard::MappedShard(const std::string& path, int64_t max_vocab) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw BadInput(path + ": cannot open token shard (" + std::strerror(errno) + ")");
  struct stat st{};
  ::fstat(fd, &st);
  map_bytes_ = static_cast<size_t>(st.st_size);
  if (map_bytes_ < kShardHeaderBytes) {
    ::close(fd);
    throw BadInput(fmt::format("{}: truncated token shard: {} bytes, expected at least the {}-byte header", path,
                               map_bytes_, kShardHeaderBytes));
  }
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw RuntimeFailure(path + ": mmap failed (" + std::strerror(errno) + ")");
  }
  const auto* h = static_cast<const unsigned char*>(map_);
  const auto bad = [&](size_t offset, const std::string& what) {
    ::munmap(map_, map_bytes_);
    map_ = nullptr;
    throw BadInput(fmt::format("{}: offset {}: {}", path, offset, what));
  };
  if (std::memcmp(h, kShardMagic, 8) != 0) bad(0, "wrong magic; expected \"L2TOKSHD\" (a prepare-data shard)");
  if (get<uint32_t>(h, 8) != kShardVersion)
    bad(8, fmt::format("format version {}; expected {}", get<uint32_t>(h, 8), kShardVersion));
  if (get<uint32_t>(h, 44) != crc32c(h, 44)) bad(44, "header checksum mismatch (corrupted header)");
  token_bytes_ = get<uint32_t>(h, 12);
  if (token_bytes_ != 2 && token_bytes_ != 4) bad(12, fmt::format("{} bytes per token; expected 2 or 4", token_bytes_));
  vocab_size_ = static_cast<int64_t>(get<uint64_t>(h, 16));
  tokens_ = static_cast<int64_t>(get<uint64_t>(h, 24));
  documents_ = static_cast<int64_t>(get<uint64_t>(h, 32));
  const uint64_t expected = kShardHeaderBytes + static_cast<uint64_t>(tokens_) * token_bytes_;
  if (tokens_ < 0 || expected != map_bytes_)
    bad(map_bytes_ < expected ? map_bytes_ : expected,
        fmt::format("file has {} bytes; the header's {} tokens need {} (truncated or padded shard)", map_bytes_,
                    tokens_, expected));
  body_ = h + kShardHeaderBytes;
  if (get<uint32_t>(h, 40) != crc32c(body_, map_bytes_ - kShardHeaderBytes)) bad(40, "token checksum mismatch");
  for (int64_t i = 0; i < tokens_; ++i) {
    const int64_t id = token_bytes_ == 2 ? get<uint16_t>(body_, 2 * i) : get<uint32_t>(body_, 4 * i);
    if (id >= max_vocab)
      bad(kShardHeaderBytes + i * token_bytes_,
          fmt::format("token id {} >= the model's vocab_size {}; expected data made for this vocabulary", id, max_vocab));
  }
}

MappedShard::MappedShard(MappedShard&& o) noexcept
    : map_(o.map_), map_bytes_(o.map_bytes_), body_(o.body_), tokens_(o.tokens_), documents_(o.documents_),
      vocab_size_(o.vocab_size_), token_bytes_(o.token_bytes_) {
  o.map_ = nullptr;
}

MappedShard::~MappedShard() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
}

void MappedShard::copy(int64_t start, int64_t count, int64_t* out) const {
  for (int64_t i = 0; i < count; ++i)
    out[i] = token_bytes_ == 2 ? get<uint16_t>(body_, 2 * (start + i)) : get<uint32_t>(body_, 4 * (start + i));
}

namespace {

nlohmann::json split_json(const SplitIndex& s) {
  return {{"shards", s.shards}, {"tokens", s.tokens}, {"documents", s.documents}};
}

SplitIndex split_from(const nlohmann::json& j, const std::string& path, const std::string& name) {
  if (!j.contains("splits") || !j["splits"].contains(name) || !j["splits"][name].is_object())
    throw BadInput(path + ": key 'splits." + name + "' is missing; expected an object with shards, tokens, documents");
  const auto& s = j["splits"][name];
  SplitIndex out;
  for (const char* key : {"tokens", "documents"})
    if (!s.contains(key) || !json_integer_in(s[key], 0, INT64_MAX))
      throw BadInput(path + ": key 'splits." + name + "." + key + "' is missing or not an integer ≥ 0");
  try {
    out.shards = s.at("shards").get<std::vector<std::string>>();
    out.tokens = s.at("tokens").get<int64_t>();
    out.documents = s.at("documents").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw BadInput(path + ": key 'splits." + name + "' is malformed (" + e.what() + ")");
  }
  for (const auto& shard : out.shards)
    if (shard.empty() || shard.find('/') != std::string::npos || shard[0] == '.')
      throw BadInput(path + ": shard name '" + shard + "' is invalid; expected a file name inside the data directory");
  return out;
}

}  // namespace

void write_index(const std::string& dir, const DatasetIndex& index) {
  const nlohmann::json j = {{"format", "llama2_pretrain tokens"},
                            {"version", kIndexVersion},
                            {"tokenizer_sha256", index.tokenizer_sha256},
                            {"vocab_size", index.vocab_size},
                            {"bos_id", index.bos_id},
                            {"eos_id", index.eos_id},
                            {"splits", {{"train", split_json(index.train)}, {"validation", split_json(index.validation)}}}};
  const std::string text = j.dump(2) + "\n";
  AtomicFile file(dir + "/index.json");
  file.write(text.data(), text.size());
  file.commit();
}

DatasetIndex read_index(const std::string& dir) {
  const std::string path = dir + "/index.json";
  std::ifstream in(path);
  if (!in) throw BadInput("--data_dir = " + dir + ": no index.json; expected a directory written by prepare-data");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw BadInput(path + ": malformed JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("format") || j["format"] != "llama2_pretrain tokens")
    throw BadInput(path + ": key 'format' is missing or wrong; expected \"llama2_pretrain tokens\"");
  if (!j.contains("version") || !json_integer_in(j["version"], 0, UINT32_MAX) || j["version"].get<uint32_t>() != kIndexVersion)
    throw BadInput(path + ": key 'version' = " + (j.contains("version") ? j["version"].dump() : "missing") +
                   "; expected " + std::to_string(kIndexVersion));
  for (const char* key : {"vocab_size", "bos_id", "eos_id"})
    if (!j.contains(key) || !json_integer_in(j[key], 0, INT32_MAX))
      throw BadInput(path + ": key '" + std::string(key) + "' is missing or not an integer in [0, 2^31)");
  DatasetIndex index;
  try {
    index.tokenizer_sha256 = j.at("tokenizer_sha256").get<std::string>();
    index.vocab_size = j.at("vocab_size").get<int64_t>();
    index.bos_id = j.at("bos_id").get<int>();
    index.eos_id = j.at("eos_id").get<int>();
  } catch (const nlohmann::json::exception& e) {
    throw BadInput(path + ": " + e.what());
  }
  if (index.vocab_size < 1) throw BadInput(path + ": key 'vocab_size' = 0 is invalid; expected ≥ 1");
  index.train = split_from(j, path, "train");
  index.validation = split_from(j, path, "validation");
  return index;
}

}  // namespace llama2
