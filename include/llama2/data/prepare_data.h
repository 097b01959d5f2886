// Owns `prepare-data`: .txt (one document each) and .jsonl (one document per line, field "text") files →
// sentencepiece token shards for a train and a validation split, plus index.json.
#pragma once
#include <cstdint>
#include <functional>
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
  int64_t piece_mib = 64;           // .jsonl bytes per unit of work that ranks share
};

// The ranks of a distributed prepare-data (srun or mpirun of it): each encodes its share of the inputs, then rank 0
// writes the corpus. `barrier` waits for every rank. One rank: {0, 1, nothing}.
struct PrepareRanks {
  int rank = 0, size = 1;
  std::function<void()> barrier = [] {};
};

struct PrepareSummary {
  int64_t documents = 0, train_tokens = 0, validation_tokens = 0;
  double seconds = 0;
};

// Throws BadInput naming the file (and JSONL line, or byte offset of invalid UTF-8). With several ranks the corpus is
// byte-identical to one rank's: the documents keep their global order (rank r encodes the r-th contiguous share of
// the input pieces, by bytes, into <output_dir>/.prepare-tmp/, which must be on a filesystem rank 0 sees), and rank 0
// alone assigns them to splits by their global index and writes the shards and index.json. The summary is rank 0's.
PrepareSummary prepare_data(const PrepareOptions& options, const PrepareRanks& ranks = {});

}  // namespace llama2
