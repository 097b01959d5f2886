// Owns `eval`: the mean next-token loss of a model (an HF directory or a checkpoint) on a text file,
// on any number of ranks and TP degree with the same result.
#pragma once
#include <cstdint>
#include <string>

namespace llama2 {

class DistributedContext;

struct EvalOptions {
  std::string model_path, checkpoint;  // exactly one
  std::string tokenizer, text;
  int64_t seq_len = 256;
  int64_t tensor_parallel_size = 1;
  int threads = 0;
};

struct EvalResult {
  double loss = 0, perplexity = 0;
  int64_t tokens = 0;  // targets scored
};

// The text is one document: BOS then its ids, no EOS; cut into consecutive windows of seq_len + 1 ids
// overlapping by one (inputs t[0..N-1], targets t[1..N]); a last partial window is dropped. Windows are
// spread over DP ranks; the loss is the mean over all targets.
EvalResult run_eval(const EvalOptions& options, DistributedContext& dist);

}  // namespace llama2
