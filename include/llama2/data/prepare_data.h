// Owns `prepare-data`: .txt (one document each) and .jsonl (one document per line, field "text") files →
// sentencepiece token shards for a train and a validation split, plus index.json.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace llama2 {

struct PrepareOptions {
  std::string tokenizer;
  std::vector<std::string> inputs;  // files or directories (their *.txt and *.jsonl, sorted)
  std::string output_dir;
  double val_fraction = 0.02;       // share of documents in the validation split
  uint64_t seed = 12349;            // which documents go to validation
  int threads = 0;                  // 0: all cores
  int64_t shard_tokens = int64_t{1} << 27;
};

struct PrepareSummary {
  int64_t documents = 0, train_tokens = 0, validation_tokens = 0;
  double seconds = 0;
};

// Throws BadInput naming the file (and JSONL line, or byte offset of invalid UTF-8).
PrepareSummary prepare_data(const PrepareOptions& options);

}  // namespace llama2
