// A model for inference from an HF directory or a checkpoint.
#include "llama2/checkpoint/model_source.h"

#include <algorithm>
#include <filesystem>

#include <ATen/ATen.h>

#include "llama2/checkpoint/checkpoint.h"
#include "llama2/checkpoint/hf_interop.h"
#include "llama2/dist/communicator.h"
#include "llama2/model/llama.h"
#include "llama2/util/errors.h"

namespace llama2 {

ModelSource::ModelSource(const std::string& model_path, const std::string& checkpoint) : model_path_(model_path) {
  if (model_path.empty() == checkpoint.empty())
    throw BadInput("expected exactly one of --model_path DIR (Hugging Face) or --checkpoint DIR");
  if (!checkpoint.empty()) checkpoint_ = std::make_unique<CheckpointReader>(resolve_checkpoint("--checkpoint", checkpoint, ""));
  config_ = checkpoint_ ? checkpoint_->config() : load_hf_config(model_path);
}

ModelSource::~ModelSource() = default;

std::string ModelSource::tokenizer_path(const std::string& given) const {
  if (!given.empty()) return given;
  const std::string bundled = model_path_ + "/tokenizer.model";
  if (model_path_.empty() || !std::filesystem::is_regular_file(bundled))
    throw BadInput("--tokenizer FILE is required (the model directory holds no tokenizer.model)");
  return bundled;
}

void ModelSource::read_tensors(const std::function<void(const HfTensor&, const at::Tensor&)>& visit) const {
  read_hf_tensors(config_, checkpoint_.get(), model_path_, visit);
}

std::unique_ptr<Llama> ModelSource::load(const DistributedContext& dist, int64_t positions) const {
  ModelConfig config = config_;
  config.max_position_embeddings = std::max(config.max_position_embeddings, positions);
  auto model = std::make_unique<Llama>(config, TensorParallel{&dist.tp(), false}, ModelOptions{positions, 0, at::kFloat});
  if (checkpoint_) load_weights(*checkpoint_, *model, dist.layout().tp_rank);
  else load_hf_weights(model_path_, *model, dist.layout().tp_rank);
  return model;
}

}  // namespace llama2
