// Owns checkpoints: every rank streams its TP shard of the model and its ZeRO-1 shard of the optimizer
// into one safetensors file of a temporary directory; rank 0 adds meta.json (config, step, data
// position, layout, a CRC-32C per file), renames the directory into place and then updates `latest`.
// Loading reshards to any tp/dp. Format: README "Checkpoints".
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

#include "llama2/checkpoint/safetensors.h"
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
  // What the data position means (0 and "" in checkpoints saved before they were recorded):
  int64_t seq_len = 0, global_batch = 0;  // tokens per sample, samples per step
  std::string corpus, tokenizer;          // sha256 of the corpus's index.json ("synthetic") and of its tokenizer
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

// "step-00000100": the directory name of step 100's checkpoint under a checkpoints root.
std::string checkpoint_name(int64_t step);

// A save in three phases, so that the middle one can run on another thread while training goes on:
//   prepare_save (collective): <root>/step-<step>.tmp/ exists; this rank's shards are referenced, or copied into
//     `snapshot` (the only part a training step must wait for);
//   write_rank_file (any thread, no MPI): this rank's safetensors file written and fsynced → its CRC-32C;
//   publish_save (collective): the CRCs gathered; rank 0 writes meta.json, renames the directory into place, then
//     moves `latest` and deletes all but the newest `keep_last` (> 0). Returns the directory.
// A failure (e.g. a full disk) throws RuntimeFailure and leaves `latest` and the previous checkpoints as they were.
struct PreparedSave {
  std::string root, name, tmp_dir, file;
  SafetensorsWriter writer;
  std::string meta;  // rank 0's meta.json without the files' CRCs
};
// `snapshot`: null, or host buffers by tensor name that hold the copies (allocated on first use, then reused: the
// copy runs at memory speed instead of faulting fresh pages in).
using SnapshotBuffers = std::map<std::string, at::Tensor>;
PreparedSave prepare_save(const std::string& root, const Llama& model, const ShardedAdamW& optimizer,
                          const TrainingState& state, const DistributedContext& dist, SnapshotBuffers* snapshot);
uint32_t write_rank_file(const PreparedSave& save);
std::string publish_save(PreparedSave& save, uint32_t crc, int64_t keep_last, const DistributedContext& dist);

// The three phases in a row, on this thread. Collective.
std::string save_checkpoint(const std::string& root, int64_t keep_last, const Llama& model,
                            const ShardedAdamW& optimizer, const TrainingState& state, const DistributedContext& dist);

// Rolling back: the complete checkpoints under root later than `step` are moved into root/rolled-back-<UTC time>/
// (nothing is deleted) and `latest` names step's checkpoint (or goes, when root has none of that step), so the run
// saves those steps again. Returns what was
// moved, for the log ("" when nothing was later). Rank 0 only, before training goes on.
std::string roll_back_after(const std::string& root, int64_t step);

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
