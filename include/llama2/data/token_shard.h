// Owns the token shard file format (written by prepare-data, memory-mapped by the loader) and the
// dataset index. Layout, little-endian, a 64-byte header then the tokens:
//   offset  size  field
//        0     8  magic "L2TOKSHD"
//        8     4  format version (1)
//       12     4  bytes per token: 2 (uint16, vocab ≤ 65536) or 4 (uint32)
//       16     8  vocab size of the tokenizer
//       24     8  token count
//       32     8  document count
//       40     4  CRC-32C of the token bytes
//       44     4  CRC-32C of header bytes [0, 44)
//       48    16  reserved, zero
//       64     -  tokens
// index.json beside the shards names them per split with the tokenizer's SHA-256 (see README).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace llama2 {

inline constexpr char kShardMagic[8] = {'L', '2', 'T', 'O', 'K', 'S', 'H', 'D'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;
inline constexpr uint32_t kIndexVersion = 1;

// Writes `tokens` as a shard (to path + ".tmp", fsync, rename). Throws RuntimeFailure on I/O errors.
void write_shard(const std::string& path, const std::vector<uint32_t>& tokens, int64_t vocab_size,
                 int64_t documents);

// A read-only memory map of one shard, validated on open: magic, version, sizes, both CRCs and every
// token id < `max_vocab`. Throws BadInput naming the file and the byte offset of the problem.
class MappedShard {
 public:
  MappedShard(const std::string& path, int64_t max_vocab);
  ~MappedShard();
  MappedShard(MappedShard&& other) noexcept;
  MappedShard(const MappedShard&) = delete;
  MappedShard& operator=(const MappedShard&) = delete;
  MappedShard& operator=(MappedShard&&) = delete;

  int64_t tokens() const { return tokens_; }
  int64_t documents() const { return documents_; }
  int64_t vocab_size() const { return vocab_size_; }
  // Tokens [start, start + count) widened to int64.
  void copy(int64_t start, int64_t count, int64_t* out) const;

 private:
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const unsigned char* body_ = nullptr;
  int64_t tokens_ = 0, documents_ = 0, vocab_size_ = 0;
  uint32_t token_bytes_ = 2;
};

struct SplitIndex {
  std::vector<std::string> shards;  // file names relative to the data directory
  int64_t tokens = 0, documents = 0;
};

struct DatasetIndex {
  std::string tokenizer_sha256;
  int64_t vocab_size = 0;
  int bos_id = 1, eos_id = 2;
  SplitIndex train, validation;
};

void write_index(const std::string& dir, const DatasetIndex& index);
// Reads <dir>/index.json; BadInput naming the file, key and what is valid.
DatasetIndex read_index(const std::string& dir);

}  // namespace llama2
