// Fuzzes the data readers: inputs starting with '{' are an index.json, all others a token shard.
// An accepted shard must hand out exactly its token count, every id below the vocabulary size.
#include <vector>

#include "fuzz_input.h"
#include "llama2/data/token_shard.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llama2;
  constexpr int64_t kVocab = 32000;
  if (size > 0 && data[0] == '{') {
    fuzz::write_input("index.json", data, size);
    fuzz::expect_clear_outcome([&] { read_index(fuzz::scratch_dir()); });
    return 0;
  }
  const std::string path = fuzz::write_input("shard.bin", data, size);
  fuzz::expect_clear_outcome([&] {
    const MappedShard shard(path, kVocab);
    if (shard.tokens() < 0 || static_cast<size_t>(shard.tokens()) > size) std::abort();
    std::vector<int64_t> tokens(static_cast<size_t>(shard.tokens()));
    shard.copy(0, shard.tokens(), tokens.data());
    for (int64_t t : tokens)
      if (t < 0 || t >= kVocab) std::abort();
  });
  return 0;
}
