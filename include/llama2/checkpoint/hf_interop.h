// Owns Hugging Face interop: a checkpoint → config.json + model.safetensors (or shards + index) with HF
// Llama names and shapes (q/k/v and gate/up unfused), and an HF directory → this rank's fused shards.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "llama2/config/config.h"

namespace at {
class Tensor;
}

namespace llama2 {

class CheckpointReader;
class Llama;

// Writes <output_dir>/config.json and the weights in fp32, one file up to `max_shard_bytes`, else
// model-0000i-of-0000n.safetensors with model.safetensors.index.json. Returns the number of files.
int export_hf(const std::string& checkpoint_dir, const std::string& output_dir, int64_t max_shard_bytes);

// <model_dir>/config.json.
ModelConfig load_hf_config(const std::string& model_dir);

// Loads <model_dir>'s weights into `model` (any TP degree). BadInput naming the file and tensor for a
// missing tensor, a wrong shape or an unsupported dtype.
void load_hf_weights(const std::string& model_dir, Llama& model, int64_t tp_rank);

// One unfused tensor under its Hugging Face name ("model.layers.0.self_attn.q_proj.weight") and full shape.
struct HfTensor {
  std::string name;
  std::vector<int64_t> shape;
};

// The model's tensors in HF names and their order in the checkpoint (q, k, v and gate, up unfused).
std::vector<HfTensor> hf_tensors(const ModelConfig& c);

// Calls visit(tensor, its full fp32 value) for each of hf_tensors(c), in that order, from one of our checkpoints
// (any TP/DP layout) or else an HF directory (`model_path`), both holding model `c`; one fused parameter at a time.
void read_hf_tensors(const ModelConfig& c, CheckpointReader* checkpoint, const std::string& model_path,
                     const std::function<void(const HfTensor&, const at::Tensor&)>& visit);

}  // namespace llama2
