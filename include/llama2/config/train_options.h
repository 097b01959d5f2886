// Owns the training flags (named as the Python recipe names them) and how they combine with the
// model config: overrides, derived accumulation, and the checks that need both. No CLI parsing here.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llama2/config/config.h"

namespace llama2 {

struct TrainOptions {
  std::string config_path;
  std::string model_path;          // Hugging Face directory to start from (its config.json unless --config)
  int64_t tensor_parallel_size = 1;
  int64_t batch_size = 1;          // micro-batch per DP rank
  int64_t grad_accum_usteps = 1;   // micro-steps per optimizer step
  int64_t global_batch_size = 0;   // > 0: derive grad_accum_usteps = GBS / batch_size / dp
  int64_t max_steps = 100;
  int64_t steps_this_run = 0;      // > 0: stop (with a checkpoint) after this many steps of this invocation
  int64_t warmup_steps = 10;
  double lr = 3e-4;
  double min_lr = 0;
  std::string lr_schedule = "linear";
  int64_t seq_len = 256;
  uint64_t seed = 12349;
  int64_t num_layers = 0;          // > 0 overrides num_hidden_layers
  bool use_mix_precision = false;  // bf16 params/activations/grads, fp32 master params and moments
  std::string main_grad_dtype = "fp32";  // with bf16: the dtype gradients accumulate and are DP-reduced in
  std::string pack_weights = "auto";     // weights' GEMMs read copies in oneDNN's layout: auto (on with AMX), on, off
  bool use_zero_1 = true;
  bool overlap_grad_reduce = true;  // DP gradient buckets reduced during the last micro-step's backward
  int64_t ddp_bucket_size = int64_t{8} << 20;  // elements per DP gradient bucket
  std::optional<bool> sequence_parallel_enabled;     // unset: the config's key
  std::optional<bool> selective_checkpoint_enabled;  // unset: the config's key
  double weight_decay = 0.01, beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-6, max_grad_norm = 1.0;
  bool weight_decay_norms = false;
  std::string output_dir = "output";
  int64_t checkpoint_freq = 100;   // steps between checkpoints (also saved at the end and on SIGTERM/SIGUSR1)
  int64_t keep_last = 3;           // checkpoints kept (0: all)
  std::string resume_ckpt;         // empty: resume from <output_dir>/checkpoints/latest if present
  bool synthetic_data = false;
  std::string synthetic_task = "bigram";  // bigram (a chain) or copy (needs attention)
  std::vector<std::string> data_dir;  // prepare-data output: DIR, or WEIGHT DIR pairs (a blend)
  std::string tokenizer;           // if set: must be the tokenizer the data was prepared with
  int64_t eval_interval = 0;       // > 0: validation loss every N steps and at the end
  int64_t eval_iters = 4;          // micro-batches per DP rank in one evaluation
  int64_t sample_interval = 0;     // > 0: a greedy sample every N steps, at the start and at the end
  std::string sample_prompt = "The";
  int64_t sample_tokens = 32;
  int threads = 0;                 // 0: cores per node / ranks per node
  int64_t log_interval = 1;
  bool skip_nonfinite = false;     // a non-finite loss/grad norm skips the step instead of ending the run
  bool skip_memory_check = false;  // train even where plan's predicted peak RSS exceeds what the node has
  double collective_timeout = 600;  // s: a longer collective wait or stall ends the job with status 4 (0: off)
  bool async_save = true;          // checkpoints written in the background while training goes on
  bool async_snapshot = true;      // resolved at start: false where a save's copy does not fit (it writes the live
                                   // state, and the next optimizer step waits for the write)
  bool allow_data_change = false;  // resume although seq_len, global batch, corpus or tokenizer changed
  double heartbeat_timeout = 20;    // s: a rank silent this long (stopped, killed, cut off) ends the job with status 5
  bool log_all_ranks = false;      // every rank logs (prefixed with its rank), not only rank 0
  double peak_tflops = 0;          // per-rank peak for MFU; 0: measure oneDNN GEMMs (the run's precision)
  bool remeasure = false;          // measure this machine's rates again instead of reading the rate cache
  // Parallel layout for `plan` (train reads it from MPI), and the rates its step estimate divides by
  // (0: measured here, on the model's shapes, with the threads one rank would have).
  int64_t nodes = 1, ranks_per_node = 0;
  double gemm_gflops = 0, attention_gflops = 0, memory_gb_s = 0, intra_node_gb_s = 0;
  double network_gb_s = 100;  // per node: trn1.32xlarge's 8 × 100 Gbit/s EFA
};

// Flags that contradict each other or have no effect together: BadInput naming both (e.g. --data_dir with
// --synthetic_data); one warning line where the combination is legitimate but surprising.
void check_flag_combinations(const TrainOptions& options);

// The config with the flags applied: --num_layers, the SP/selective overrides, and
// max_position_embeddings raised to --seq_len when shorter (as the recipe does; logged).
ModelConfig apply_options(ModelConfig config, const TrainOptions& options);

// Checks that need the config and the layout (heads, kv heads, intermediate size and, with SP, seq_len
// divisible by tp), and derives grad_accum_usteps from --global_batch_size. Throws BadInput.
void resolve_batch_and_parallelism(const ModelConfig& config, TrainOptions& options, int64_t world);

}  // namespace llama2
