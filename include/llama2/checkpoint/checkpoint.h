// Owns checkpoints: every rank streams its TP shard of the model and its ZeRO-1 shard of the optimizer
// into one safetensors file of a temporary directory; rank 0 adds meta.json (config, step, data
// position, layout, a CRC-32C per file), renames the directory into place and then updates `latest`.
// Loading reshards to any tp/dp. Format: README "Checkpoints".
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

#include "llama2/config/config.h"

namespace llama2 {

class DistributedContext;
class Llama;
class ShardedAdamW;
struct Parameter;

inline constexpr uint32_t kCheckpointVersion = 1;

struct TrainingState {
  int64_t step = 0;              // optimizer steps done
  int64_t consumed_samples = 0;  // global samples consumed: the data position
  int64_t consumed_tokens = 0;
  uint64_t seed = 0;             // data order and synthetic data are functions of (seed, sample index)
};

// A saved checkpoint opened for reading: its config and layout from meta.json, its shard files opened
// (and CRC-checked against meta.json) on first use. BadInput for anything missing, corrupt or unknown.
class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& dir);
  ~CheckpointReader();
  const ModelConfig& config() const;
  int64_t tp() const;
  TrainingState state() const;
  int64_t optimizer_step() const;
  // Parameter i (of parameter_layout(config, tp())) as saved by TP rank t, fp32 (the master copy if bf16).
  at::Tensor weights(size_t i, int64_t t);
  // Its part of optimizer state `name` ("exp_avg", "exp_avg_sq"), shaped like the shard.
  at::Tensor optimizer_state(const std::string& name, size_t i, int64_t t);
  // The full (tp=1) fp32 value of parameter i.
  at::Tensor full_weights(size_t i);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Loads only the model parameters of a checkpoint (any saved tp) into `model` (for eval and export).
void load_weights(CheckpointReader& checkpoint, Llama& model, int64_t tp_rank);

// Saves into <root>/step-<step>; deletes all but the newest `keep_last` (> 0) afterwards. Collective.
// Returns the directory. A failure (e.g. a full disk) throws RuntimeFailure and leaves `latest` as it was.
std::string save_checkpoint(const std::string& root, int64_t keep_last, const Llama& model,
                            const ShardedAdamW& optimizer, const TrainingState& state, const DistributedContext& dist);

// The checkpoint to resume from: `explicit_dir` (a checkpoint, or a root with `latest`) if given, else
// <root>/latest if present, else "" (start fresh). BadInput naming `flag` (the option that gave explicit_dir) when
// an explicit one is not a checkpoint.
std::string resolve_checkpoint(const std::string& flag, const std::string& explicit_dir, const std::string& root);

// Loads a checkpoint saved at any tp/dp into this rank's model and optimizer (collective).
// BadInput (nothing modified on disk): missing meta.json or shard, checksum mismatch, truncated file,
// a different model config (the differing keys are listed), an unknown format version.
TrainingState load_checkpoint(const std::string& dir, Llama& model, ShardedAdamW& optimizer,
                              const DistributedContext& dist);

}  // namespace llama2
