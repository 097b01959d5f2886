// Owns Hugging Face interop: a checkpoint → config.json + model.safetensors (or shards + index) with HF
// Llama names and shapes (q/k/v and gate/up unfused), and an HF directory → this rank's fused shards.
#pragma once
#include <cstdint>
#include <string>

#include "llama2/config/config.h"

namespace llama2 {

class Llama;

// Writes <output_dir>/config.json and the weights in fp32, one file up to `max_shard_bytes`, else
// model-0000i-of-0000n.safetensors with model.safetensors.index.json. Returns the number of files.
int export_hf(const std::string& checkpoint_dir, const std::string& output_dir, int64_t max_shard_bytes);

// <model_dir>/config.json.
ModelConfig load_hf_config(const std::string& model_dir);

// Loads <model_dir>'s weights into `model` (any TP degree). BadInput naming the file and tensor for a
// missing tensor, a wrong shape or an unsupported dtype.
void load_hf_weights(const std::string& model_dir, Llama& model, int64_t tp_rank);

}  // namespace llama2
