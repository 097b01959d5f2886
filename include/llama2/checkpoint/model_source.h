// Owns opening a trained model for inference (eval, generate) and export (GGUF): a Hugging Face directory or one
// of our checkpoints, loaded at any TP degree with sequence parallelism off, or read tensor by tensor.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "llama2/checkpoint/hf_interop.h"
#include "llama2/config/config.h"

namespace llama2 {

class CheckpointReader;
class DistributedContext;
class Llama;

class ModelSource {
 public:
  // Exactly one of `model_path` (an HF directory) and `checkpoint` (a checkpoint or a directory with `latest`);
  // BadInput otherwise, or when it does not hold a model.
  ModelSource(const std::string& model_path, const std::string& checkpoint);
  ~ModelSource();

  const ModelConfig& config() const { return config_; }
  // The tokenizer to use: `given` (--tokenizer), else <model_path>/tokenizer.model when the HF directory has one
  // (as Meta's does); BadInput when neither exists.
  std::string tokenizer_path(const std::string& given) const;
  // The model on dist's TP layout (set_tensor_parallel first), fp32, with rotary tables for `positions`.
  std::unique_ptr<Llama> load(const DistributedContext& dist, int64_t positions) const;
  // Each tensor under its Hugging Face name, full and in fp32, in hf_tensors(config()) order (read_hf_tensors).
  void read_tensors(const std::function<void(const HfTensor&, const at::Tensor&)>& visit) const;

 private:
  std::string model_path_;
  std::unique_ptr<CheckpointReader> checkpoint_;
  ModelConfig config_;
};

}  // namespace llama2
