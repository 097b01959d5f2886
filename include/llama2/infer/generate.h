// Owns `generate`: a model's continuation of a prompt, one token at a time against a KV cache, on any number of
// ranks and TP degree with the same tokens; and the greedy samples `train` writes while it trains.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llama2/infer/sampler.h"

namespace llama2 {

class DistributedContext;
class Llama;

struct GenerateOptions {
  std::string model_path, checkpoint;  // exactly one
  std::string tokenizer;               // default: the model directory's tokenizer.model
  std::string prompt;
  int64_t max_new_tokens = 64;
  SamplingOptions sampling;
  int64_t tensor_parallel_size = 1;
  int threads = 0;
};

struct Generation {
  int64_t prompt_tokens = 0;  // BOS included
  std::vector<int> tokens;    // the continuation, without EOS
  std::string text;           // the continuation decoded
  double seconds = 0;         // of the decoding loop (prompt included)
};

// The continuation of `prompt` (token ids, BOS first) by `model`: the prompt in one pass, then one token per pass
// against the KV cache, up to `max_new` tokens, stopping at `eos` (not included). Each pass's logits are gathered
// over the model's TP group, so every rank chooses the same token. No autograd.
std::vector<int> generate_tokens(const Llama& model, const std::vector<int>& prompt, int64_t max_new, int eos,
                                 Sampler& sampler);

Generation run_generate(const GenerateOptions& options, DistributedContext& dist);

}  // namespace llama2
