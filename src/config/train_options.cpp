// Flag overrides of the config and the checks that need config, flags and layout together.
#include "llama2/config/train_options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "llama2/util/errors.h"

namespace llama2 {
namespace {

void require_divisible(const std::string& key, int64_t value, int64_t tp) {
  if (value % tp != 0)
    throw BadInput(fmt::format("{} = {} is not divisible by --tensor_parallel_size = {}; expected a tp that divides "
                               "it",
                               key, value, tp));
}

}  // namespace

void check_flag_combinations(const TrainOptions& o) {
  if (o.config_path.empty() && o.model_path.empty())
    throw BadInput("--config FILE or --model_path DIR is required; expected a Hugging Face config.json");
  if (o.synthetic_data && !o.data_dir.empty())
    throw BadInput(fmt::format("--data_dir = {} and --synthetic_data contradict each other (synthetic data reads no "
                               "directory); expected one of them",
                               fmt::join(o.data_dir, " ")));
  if (!o.synthetic_data && o.synthetic_task != "bigram")
    throw BadInput(fmt::format("--synthetic_task = {} has no effect without --synthetic_data; expected "
                               "--synthetic_data with it",
                               o.synthetic_task));
  if (o.synthetic_data && !o.tokenizer.empty() && o.sample_interval == 0)
    throw BadInput(fmt::format("--tokenizer = {} has no effect with --synthetic_data (it checks the tokenizer "
                               "--data_dir was prepared with, and decodes --sample_interval's samples); expected "
                               "--data_dir, --sample_interval, or no --tokenizer",
                               o.tokenizer));
  if (o.sample_interval > 0 && o.tokenizer.empty())
    throw BadInput(fmt::format("--sample_interval = {} needs --tokenizer FILE to encode --sample_prompt and decode "
                               "the samples; expected the tokenizer.model the data was prepared with",
                               o.sample_interval));
  if (o.global_batch_size > 0 && o.grad_accum_usteps != 1)
    throw BadInput(fmt::format("--grad_accum_usteps = {} and --global_batch_size = {} both set the accumulation "
                               "(GBS / batch_size / dp); expected one of them",
                               o.grad_accum_usteps, o.global_batch_size));
  if (o.main_grad_dtype != "fp32" && !o.use_mix_precision)
    throw BadInput(fmt::format("--main_grad_dtype = {} has no effect without --use_mix_precision (fp32 training keeps "
                               "fp32 gradients); expected --use_mix_precision, or no --main_grad_dtype",
                               o.main_grad_dtype));
  if (o.min_lr > o.lr)
    throw BadInput(fmt::format("--min_lr = {} is above --lr = {}; expected min_lr <= lr", o.min_lr, o.lr));
  if (o.warmup_steps > o.max_steps)
    spdlog::warn("--warmup_steps = {} exceeds --max_steps = {}: the learning rate never reaches --lr = {}",
                 o.warmup_steps, o.max_steps, o.lr);
}

ModelConfig apply_options(ModelConfig config, const TrainOptions& o) {
  if (o.num_layers > 0) config.num_hidden_layers = o.num_layers;
  if (o.sequence_parallel_enabled) config.sequence_parallel_enabled = *o.sequence_parallel_enabled;
  if (o.selective_checkpoint_enabled) config.selective_checkpoint_enabled = *o.selective_checkpoint_enabled;
  if (config.max_position_embeddings < o.seq_len) {
    spdlog::info("max_position_embeddings raised from {} to --seq_len {}", config.max_position_embeddings, o.seq_len);
    config.max_position_embeddings = o.seq_len;
  }
  return config;
}

void resolve_batch_and_parallelism(const ModelConfig& c, TrainOptions& o, int64_t world) {
  const int64_t tp = o.tensor_parallel_size;
  if (tp < 1 || world % tp != 0)
    throw BadInput(fmt::format("--tensor_parallel_size = {} is invalid; expected a divisor of the world size {}", tp,
                               world));
  require_divisible("num_attention_heads", c.num_attention_heads, tp);
  require_divisible("num_key_value_heads", c.num_key_value_heads, tp);
  require_divisible("intermediate_size", c.intermediate_size, tp);
  if (c.sequence_parallel_enabled && tp > 1) require_divisible("--seq_len (sequence parallelism on)", o.seq_len, tp);
  const int64_t dp = world / tp;
  if (o.global_batch_size > 0) {
    if (o.global_batch_size % (o.batch_size * dp) != 0)
      throw BadInput(fmt::format("--global_batch_size = {} is not divisible by --batch_size {} x dp {}; expected a "
                                 "multiple of {}",
                                 o.global_batch_size, o.batch_size, dp, o.batch_size * dp));
    o.grad_accum_usteps = o.global_batch_size / (o.batch_size * dp);
  }
}

}  // namespace llama2
