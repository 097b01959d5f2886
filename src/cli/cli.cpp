// CLI11 subcommands: parse, call, map errors to exit status.
#include "llama2/cli/cli.h"

#include <cstdio>
#include <functional>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "llama2/checkpoint/checkpoint.h"
#include "llama2/checkpoint/gguf_export.h"
#include "llama2/checkpoint/hf_interop.h"
#include "llama2/config/flag_checks.h"
#include "llama2/data/prepare_data.h"
#include "llama2/data/tokenizer_training.h"
#include "llama2/data/tokenizer.h"
#include "llama2/dist/communicator.h"
#include "llama2/dist/layout.h"
#include "llama2/plan/machine_rates.h"
#include "llama2/plan/plan.h"
#include "llama2/plan/rate_cache.h"
#include "llama2/infer/eval.h"
#include "llama2/infer/generate.h"
#include "llama2/train/trainer.h"
#include "llama2/util/errors.h"
#include "llama2/util/human_units.h"

namespace llama2 {
namespace {

// A boolean flag that accepts --name, --name=true and --name=false.
void add_bool(CLI::App* app, const std::string& name, bool& value, const std::string& help) {
  app->add_flag("--" + name, value, help + (value ? " (default: true)" : " (default: false)"));
}

// Like add_bool, but remembers whether it was given, so that it overrides the config's key only then.
void add_override(CLI::App* app, const std::string& name, std::optional<bool>& target, const std::string& help,
                  std::vector<std::function<void()>>& finalizers) {
  auto value = std::make_shared<bool>(false);
  CLI::Option* opt = app->add_flag("--" + name, *value, help + " (default: the config's key)");
  finalizers.push_back([opt, value, &target] {
    if (opt->count() > 0) target = *value;
  });
}

void add_model_options(CLI::App* app, TrainOptions& o, std::vector<std::function<void()>>& finalizers) {
  app->add_option("--config", o.config_path, "Hugging Face LlamaConfig config.json");
  app->add_option("--tensor_parallel_size", o.tensor_parallel_size, "TP degree (ranks per TP group)")
      ->check(integer_at_least(1))->capture_default_str();
  app->add_option("--batch_size", o.batch_size, "micro-batch size per DP rank")
      ->check(integer_at_least(1))->capture_default_str();
  app->add_option("--grad_accum_usteps", o.grad_accum_usteps, "micro-steps accumulated per optimizer step")
      ->check(integer_at_least(1))->capture_default_str();
  app->add_option("--global_batch_size", o.global_batch_size,
                  "if > 0: derive --grad_accum_usteps = GBS / batch_size / dp")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--seq_len", o.seq_len, "tokens per sample")->check(integer_in(1, 1 << 20))->capture_default_str();
  app->add_option("--num_layers", o.num_layers, "if > 0: override num_hidden_layers")
      ->check(integer_in(0, 4096))->capture_default_str();
  add_bool(app, "use_mix_precision", o.use_mix_precision, "bf16 params/activations/grads, fp32 master params");
  app->add_option("--main_grad_dtype", o.main_grad_dtype,
                  "with --use_mix_precision: the dtype weight gradients accumulate over micro-steps and are reduced "
                  "over DP in (fp32: Megatron's main gradients; bf16: the recipe's, half the memory and traffic)")
      ->check(CLI::IsMember({"fp32", "bf16"}))->capture_default_str();
  app->add_option("--pack_weights", o.pack_weights,
                  "keep a copy of each GEMM weight in the layout oneDNN's kernels read fastest, made once per "
                  "optimizer step (up to 2: forward and data gradient); auto: on for bf16 where oneDNN runs on "
                  "AMX, off elsewhere")
      ->check(CLI::IsMember({"auto", "on", "off"}))->capture_default_str();
  add_bool(app, "use_zero_1", o.use_zero_1, "shard fp32 master params and Adam moments over DP (ZeRO-1)");
  add_bool(app, "overlap_grad_reduce", o.overlap_grad_reduce,
           "reduce DP gradient buckets non-blocking during backward (else all after it)");
  app->add_option("--ddp_bucket_size", o.ddp_bucket_size, "elements per DP gradient bucket")
      ->check(integer_at_least(1))->capture_default_str();
  add_override(app, "sequence_parallel_enabled", o.sequence_parallel_enabled, "sequence parallelism", finalizers);
  add_override(app, "selective_checkpoint_enabled", o.selective_checkpoint_enabled,
               "the recipe's flag, no effect: core attention always recomputes its scores in backward", finalizers);
}

// Both train (its MFU peak) and plan (its rates) read measurements from the per-machine cache.
void add_remeasure(CLI::App* app, TrainOptions& o) {
  add_bool(app, "remeasure", o.remeasure,
           "measure this machine's GEMM, attention and memory rates again instead of reading them from the cache of "
           "earlier measurements on this machine and build ($XDG_CACHE_HOME or ~/.cache/llama2_pretrain), and "
           "update it");
}

void add_train_options(CLI::App* app, TrainOptions& o) {
  app->add_option("--max_steps", o.max_steps, "optimizer steps")->check(integer_at_least(1))->capture_default_str();
  app->add_option("--steps_this_run", o.steps_this_run,
                  "stop after this many steps of this invocation, with a checkpoint (0: run to --max_steps)")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--warmup_steps", o.warmup_steps, "linear warmup steps")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--lr", o.lr, "peak learning rate")->check(number_in(0.0, 10.0))->capture_default_str();
  app->add_option("--min_lr", o.min_lr, "final learning rate")->check(number_in(0.0, 10.0))->capture_default_str();
  app->add_option("--lr_schedule", o.lr_schedule, "decay after warmup")
      ->check(CLI::IsMember({"linear", "cosine"}))->capture_default_str();
  app->add_option("--seed", o.seed, "seed of initialization and data order")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--weight_decay", o.weight_decay, "AdamW decoupled weight decay")
      ->check(number_in(0.0, 1.0))->capture_default_str();
  app->add_option("--beta1", o.beta1, "AdamW beta1")->check(number_in(0.0, 0.999999))->capture_default_str();
  app->add_option("--beta2", o.beta2, "AdamW beta2")->check(number_in(0.0, 0.999999))->capture_default_str();
  app->add_option("--adam_eps", o.adam_eps, "AdamW epsilon")->check(number_in(1e-30, 1.0))->capture_default_str();
  app->add_option("--max_grad_norm", o.max_grad_norm, "global gradient-norm clip (0: off)")
      ->check(number_at_least(0))->capture_default_str();
  add_bool(app, "weight_decay_norms", o.weight_decay_norms, "apply weight decay to RMSNorm weights too");
  app->add_option("--output_dir", o.output_dir, "where metrics and checkpoints go")->capture_default_str();
  app->add_option("--model_path", o.model_path,
                  "Hugging Face Llama directory to start from (continued pretraining; its config.json unless --config)");
  app->add_option("--checkpoint_freq", o.checkpoint_freq,
                  "steps between checkpoints (0: only at the end and on SIGTERM/SIGUSR1)")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--keep_last", o.keep_last, "checkpoints to keep (0: all)")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--resume_ckpt", o.resume_ckpt,
                  "checkpoint (or checkpoints directory) to resume from (default: <output_dir>/checkpoints/latest)");
  add_bool(app, "synthetic_data", o.synthetic_data, "train on the seeded synthetic token stream");
  app->add_option("--synthetic_task", o.synthetic_task,
                  "with --synthetic_data: bigram (a seeded chain, learnable without attention) or copy (each window's "
                  "second half repeats its first: learnable only with working causal attention)")
      ->check(CLI::IsMember({"bigram", "copy"}))->capture_default_str();
  app->add_option("--data_dir", o.data_dir,
                  "token shards written by prepare-data: DIR, or a blend of WEIGHT DIR pairs (--data_dir 0.7 data/web "
                  "0.3 data/code: every prefix of the stream within one sample of the weights)")
      ->expected(1, -1);
  app->add_option("--tokenizer", o.tokenizer,
                  "if given: refuse data prepared with another tokenizer.model; decodes --sample_interval's samples");
  app->add_option("--eval_interval", o.eval_interval, "validation loss every N steps and at the end (0: never)")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--eval_iters", o.eval_iters, "micro-batches per DP rank per evaluation")
      ->check(integer_at_least(1))->capture_default_str();
  app->add_option("--sample_interval", o.sample_interval,
                  "a greedy continuation of --sample_prompt every N steps, at the start and at the end, into the "
                  "log, metrics.jsonl and TensorBoard's text tab (needs --tokenizer; 0: never)")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--sample_prompt", o.sample_prompt, "the prompt of --sample_interval's samples")
      ->capture_default_str();
  app->add_option("--sample_tokens", o.sample_tokens, "tokens per sample at most (prompt + these <= --seq_len)")
      ->check(integer_in(1, 1 << 20))->capture_default_str();
  app->add_option("--threads", o.threads, "intra-op threads per rank (0: cores per node / ranks per node)")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--log_interval", o.log_interval, "steps between log lines")
      ->check(integer_at_least(1))->capture_default_str();
  add_bool(app, "skip_memory_check", o.skip_memory_check,
           "train even where the predicted peak RSS exceeds what the node can give (else: exit 2 before allocating)");
  app->add_option("--collective_timeout", o.collective_timeout,
                  "seconds a rank may wait in one collective, or go without progress, before the job ends with "
                  "exit status 4 naming the ranks it waited for (warned at a tenth; training steps get at least 3x "
                  "the slowest step, the first step 10x plan's estimate of it, setup and checkpoint saves 3x this; "
                  "0: no limit)")
      ->check(number_at_least(0))->capture_default_str();
  app->add_option("--heartbeat_timeout", o.heartbeat_timeout,
                  "seconds without a heartbeat from a rank (sent every second outside MPI, whatever the step time) "
                  "before every rank ends the job with exit status 5 naming its host and rank: stopped, killed or "
                  "cut off (0: no liveness check)")
      ->check(number_at_least(0))->capture_default_str();
  add_bool(app, "async_save", o.async_save,
           "write checkpoints in the background: a save holds the step only while it copies this rank's state to "
           "host memory (plan counts the copy; where the copy does not fit, the write reads the live state and the next "
           "optimizer step waits for it, and a warning says so); false: the step waits for the whole write");
  add_bool(app, "allow_data_change", o.allow_data_change,
           "resume although the checkpoint was trained with another --seq_len, global batch, corpus or tokenizer "
           "(its position is kept in tokens; else: exit 2 naming both values)");
  add_bool(app, "skip_nonfinite", o.skip_nonfinite,
           "skip a step whose loss or gradient norm is NaN/inf and go on (else: exit 1, saving nothing new)");
  add_bool(app, "log_all_ranks", o.log_all_ranks, "every rank logs, prefixed with its rank (debugging)");
  app->add_option("--peak_tflops", o.peak_tflops,
                  "per-rank peak TFLOP/s for MFU (0: measure oneDNN GEMMs of the run's precision at start-up)")
      ->check(number_at_least(0))->capture_default_str();
  add_remeasure(app, o);
}

void add_plan_options(CLI::App* app, TrainOptions& o) {
  add_remeasure(app, o);
  app->add_option("--nodes", o.nodes, "nodes in the job")->check(integer_at_least(1))->capture_default_str();
  app->add_option("--ranks_per_node", o.ranks_per_node, "MPI ranks per node (0: tensor_parallel_size)")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--threads", o.threads, "threads of one rank for the measurements (0: cores / ranks_per_node)")
      ->check(integer_at_least(0))->capture_default_str();
  const auto rate = [&](const char* name, double& value, const char* what) {
    app->add_option(name, value, what)->check(number_at_least(0))->capture_default_str();
  };
  rate("--gemm_gflops", o.gemm_gflops, "per-rank GEMM rate, also the MFU peak (0: measure oneDNN on the model's shapes)");
  rate("--attention_gflops", o.attention_gflops, "per-rank rate of core attention, forward and backward (0: measure it)");
  rate("--memory_gb_s", o.memory_gb_s, "per-rank streaming bandwidth (0: measure ATen on activation-sized tensors)");
  rate("--intra_node_gb_s", o.intra_node_gb_s, "per-rank collective bandwidth inside a node (0: half the memory bandwidth)");
  rate("--network_gb_s", o.network_gb_s, "per-node bandwidth between nodes (100: trn1.32xlarge's 8 x 100 Gbit/s EFA)");
}

void add_prepare_options(CLI::App* app, PrepareOptions& o) {
  app->add_option("--tokenizer", o.tokenizer, "sentencepiece tokenizer.model (Llama-2's)")->required();
  app->add_option("--input", o.inputs, ".txt files (one document each), .jsonl files (field \"text\"), or directories")
      ->required();
  app->add_option("--output_dir", o.output_dir, "where shards and index.json go")->required();
  app->add_option("--val_fraction", o.val_fraction, "share of documents held out for validation")
      ->check(number_in(0.0, 0.999))->capture_default_str();
  app->add_option("--seed", o.seed, "which documents are held out")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--threads", o.threads, "encoding threads per rank (0: the node's cores / its ranks)")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--piece_mib", o.piece_mib,
                  "with several ranks (srun/mpirun): MiB of a .jsonl file per unit of work the ranks share")
      ->check(integer_in(1, 1 << 20))->capture_default_str();
}

void add_tokenizer_training_options(CLI::App* app, TokenizerTrainingOptions& o) {
  app->add_option("--input", o.inputs, ".txt files (one document each), .jsonl files (field \"text\"), or directories")
      ->required();
  app->add_option("--vocab_size", o.vocab_size, "pieces of the model (a config's vocab_size must be at least this)")
      ->check(integer_at_least(1))->capture_default_str();
  app->add_option("--output", o.output, "the model file, <name>.model (<name>.vocab is written beside it)")->required();
  app->add_option("--input_sentence_size", o.input_sentence_size,
                  "lines of the corpus the trainer samples (0: all of them)")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--threads", o.threads, "training threads (0: all cores)")
      ->check(integer_at_least(0))->capture_default_str();
}

int run_tokenizer_training(const TokenizerTrainingOptions& o) {
  const TokenizerTrainingSummary s = train_tokenizer(o);
  std::printf("trained a %lld-piece tokenizer on %lld documents (%lld lines) in %.1f s → %s\n",
              static_cast<long long>(o.vocab_size), static_cast<long long>(s.documents),
              static_cast<long long>(s.lines), s.seconds, o.output.c_str());
  return 0;
}

// One rank, or every rank of an srun/mpirun (each encodes its share on its cores; rank 0 writes the corpus).
int run_prepare(PrepareOptions o, DistributedContext& dist) {
  dist.set_tensor_parallel(1, o.threads);  // the node's cores shared by its ranks, and the ranks' liveness
  o.threads = dist.layout().threads;
  const Communicator& world = dist.world();
  const PrepareSummary s = prepare_data(o, {world.rank(), world.size(), [&] { world.barrier(); }});
  if (world.rank() != 0) return 0;
  std::printf("prepared %lld documents: %lld train tokens, %lld validation tokens in %.1f s (%.0f tokens/s) → %s\n",
              static_cast<long long>(s.documents), static_cast<long long>(s.train_tokens),
              static_cast<long long>(s.validation_tokens), s.seconds,
              (s.train_tokens + s.validation_tokens) / s.seconds, o.output_dir.c_str());
  return 0;
}

// GFLOP/s of oneDNN GEMMs on the model's own shapes with this process's threads, fp32 and with bf16 inputs (the best
// of each is the machine's peak that scripts/bench.sh divides that precision's runs by), and the cores' raw
// instruction peaks beside them.
int run_gemm_peak(const TrainOptions& o) {
  if (o.config_path.empty()) throw BadInput("--config FILE is required; expected a Hugging Face config.json");
  const ModelConfig config = load_model_config(o.config_path);
  ParallelLayout layout;
  layout.threads = default_threads(o.threads, 1);
  const std::string threads = apply_threads(layout);
  double best = 0, best_bf16 = 0;
  std::string shapes;
  for (const GemmShape& g : model_gemm_shapes(config, o.batch_size * o.seq_len, o.tensor_parallel_size)) {
    const double gflops = measure_gemm_flops(g.m, g.k, g.n, 5) / 1e9;
    const double gflops_bf16 = measure_gemm_flops(g.m, g.k, g.n, 5, true) / 1e9;
    best = std::max(best, gflops);
    best_bf16 = std::max(best_bf16, gflops_bf16);
    shapes += fmt::format("{}{{\"name\": \"{}\", \"m\": {}, \"k\": {}, \"n\": {}, \"gflops\": {:.1f}, "
                          "\"gflops_bf16\": {:.1f}}}",
                          shapes.empty() ? "" : ", ", g.name, g.m, g.k, g.n, gflops, gflops_bf16);
  }
  std::printf("{\"peak_gflops\": %.1f, \"peak_gflops_bf16\": %.1f, \"instruction_peak_gflops\": %.1f, "
              "\"instruction_peak_gflops_bf16\": %.1f, \"threads\": %d, \"shapes\": [%s]}\n",
              best, best_bf16, measure_instruction_peak(false) / 1e9, measure_instruction_peak(true) / 1e9,
              layout.threads, shapes.c_str());
  return 0;
}

// Runs a single-process subcommand: BadInput → status 2, anything else → status 1.
int run_local(const std::function<int()>& body) {
  try {
    return body();
  } catch (const BadInput& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", one_line(e).c_str());
    return kExitRuntimeFailure;
  }
}

void add_eval_options(CLI::App* app, EvalOptions& o) {
  app->add_option("--model_path", o.model_path, "Hugging Face model directory (config.json + safetensors)");
  app->add_option("--checkpoint", o.checkpoint, "a checkpoint directory (or checkpoints directory with 'latest')");
  app->add_option("--tokenizer", o.tokenizer, "sentencepiece tokenizer.model (default: the model directory's)");
  app->add_option("--text", o.text, "text file, encoded as one document")->required();
  app->add_option("--seq_len", o.seq_len, "window length")->check(integer_in(1, 1 << 20))->capture_default_str();
  app->add_option("--tensor_parallel_size", o.tensor_parallel_size, "TP degree")
      ->check(integer_at_least(1))->capture_default_str();
  app->add_option("--threads", o.threads, "intra-op threads per rank (0: cores per node / ranks per node)")
      ->check(integer_at_least(0))->capture_default_str();
}

void add_generate_options(CLI::App* app, GenerateOptions& o, bool& json) {
  app->add_option("--model_path", o.model_path, "Hugging Face model directory (config.json + safetensors)");
  app->add_option("--checkpoint", o.checkpoint, "a checkpoint directory (or checkpoints directory with 'latest')");
  app->add_option("--tokenizer", o.tokenizer, "sentencepiece tokenizer.model (default: the model directory's)");
  app->add_option("--prompt", o.prompt, "text to continue (after BOS)")->required();
  app->add_option("--max_new_tokens", o.max_new_tokens, "tokens to generate at most (stops earlier at EOS)")
      ->check(integer_in(1, 1 << 20))->capture_default_str();
  app->add_option("--temperature", o.sampling.temperature, "softmax temperature (0: greedy)")
      ->check(number_in(0, 100))->capture_default_str();
  app->add_option("--top_k", o.sampling.top_k, "sample among the k most likely tokens only (0: all)")
      ->check(integer_at_least(0))->capture_default_str();
  app->add_option("--top_p", o.sampling.top_p, "sample among the most likely tokens holding this much probability")
      ->check(number_in(0, 1))->capture_default_str();
  app->add_option("--seed", o.sampling.seed, "sampling seed: the same seed gives the same tokens")
      ->capture_default_str();
  add_bool(app, "json", json, "print one JSON line {prompt_tokens, tokens, text} instead of the text");
  app->add_option("--tensor_parallel_size", o.tensor_parallel_size, "TP degree")
      ->check(integer_at_least(1))->capture_default_str();
  app->add_option("--threads", o.threads, "intra-op threads per rank (0: cores per node / ranks per node)")
      ->check(integer_at_least(0))->capture_default_str();
}

void add_export_gguf_options(CLI::App* app, GgufExportOptions& o) {
  app->add_option("--checkpoint", o.checkpoint, "a checkpoint directory (or checkpoints directory with 'latest')");
  app->add_option("--model_path", o.model_path, "Hugging Face model directory (config.json + safetensors)");
  app->add_option("--tokenizer", o.tokenizer, "sentencepiece tokenizer.model (default: the model directory's)");
  app->add_option("--output", o.output, "the .gguf file to write")->required();
  app->add_option("--dtype", o.dtype, "type of the matrices (norms stay f32; q8_0: blocks of 32 with an f16 scale)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}))->capture_default_str();
  add_bool(app, "force", o.force, "overwrite --output if it exists");
}

void print_generation(const Generation& g, bool json) {
  if (json)
    std::printf("%s\n", nlohmann::json{{"prompt_tokens", g.prompt_tokens}, {"tokens", g.tokens}, {"text", g.text}}
                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  else
    std::printf("%s\n", g.text.c_str());
  std::fprintf(stderr, "%zu tokens in %.2f s (%.1f tokens/s, the %lld-token prompt included)\n", g.tokens.size(),
               g.seconds, g.seconds > 0 ? static_cast<double>(g.tokens.size()) / g.seconds : 0.0,
               static_cast<long long>(g.prompt_tokens));
}

int run_plan(TrainOptions o) {
  if (o.config_path.empty()) throw BadInput("--config FILE is required; expected a Hugging Face config.json");
  const ModelConfig config = apply_options(load_model_config(o.config_path), o);
  const int64_t ranks_per_node = o.ranks_per_node > 0 ? o.ranks_per_node : o.tensor_parallel_size;
  const int64_t world = o.nodes * ranks_per_node;
  resolve_batch_and_parallelism(config, o, world);
  const MemoryPlanInput in = memory_plan_input(o, o.tensor_parallel_size, world / o.tensor_parallel_size);
  ParallelLayout layout;
  layout.threads = default_threads(o.threads, static_cast<int>(ranks_per_node));
  apply_threads(layout);
  MachineRates rates;
  if (o.gemm_gflops == 0 || o.attention_gflops == 0 || o.memory_gb_s == 0)
    rates = measure_machine_rates(config, o.batch_size * o.seq_len, o.seq_len, o.tensor_parallel_size,
                                  o.use_mix_precision, o.remeasure);
  rates.network_bytes_per_s = o.network_gb_s * 1e9;
  if (o.gemm_gflops > 0) rates.gemm_flops = rates.peak_flops = o.gemm_gflops * 1e9;
  if (rates.loss_flops == 0) rates.loss_flops = rates.gemm_flops;  // not measured: the lm_head at the GEMM rate
  if (o.attention_gflops > 0) rates.attention_flops = o.attention_gflops * 1e9;
  if (o.memory_gb_s > 0) rates.memory_bytes_per_s = o.memory_gb_s * 1e9;
  rates.intra_node_bytes_per_s = o.intra_node_gb_s > 0 ? o.intra_node_gb_s * 1e9 : rates.memory_bytes_per_s / 2;
  const StepPlanInput step{o.grad_accum_usteps, o.nodes, ranks_per_node, o.overlap_grad_reduce};
  std::fputs(format_plan(config, in, step, &rates).c_str(), stdout);
  if (o.use_mix_precision && o.gemm_gflops == 0) {  // both precisions, for CPUs without a bf16 matrix engine
    const double fp32 =
        measure_gemm_rates(config, o.batch_size * o.seq_len, o.tensor_parallel_size, false, o.remeasure).gemm_flops;
    std::printf("GEMMs per rank        bf16 %.1f GFLOP/s, fp32 %.1f GFLOP/s%s\n", rates.gemm_flops / 1e9, fp32 / 1e9,
                rates.gemm_flops < fp32 ? ": bf16 is slower on this CPU (no bf16 matrix engine); fp32 runs faster" : "");
  }
  const std::string cache = rate_cache_path();
  std::printf("measured with %d threads per rank%s\n", layout.threads,
              cache.empty() ? "" : ("; cached in " + cache + " (--remeasure: measure again)").c_str());
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S] [%l] %v");  // no colour codes: logs usually go to files
  CLI::App app{"llama2_pretrain: Llama-2 pretraining with tensor, sequence and ZeRO-1 data parallelism"};
  app.require_subcommand(1);
  TrainOptions train_opts, plan_opts;
  std::vector<std::function<void()>> finalizers;

  CLI::App* train = app.add_subcommand("train", "train a model (launch with mpirun/srun for several ranks)");
  add_model_options(train, train_opts, finalizers);
  add_train_options(train, train_opts);
  CLI::App* plan = app.add_subcommand("plan", "print parameters, FLOPs per token and memory per rank of a layout");
  add_model_options(plan, plan_opts, finalizers);
  add_plan_options(plan, plan_opts);
  PrepareOptions prepare_opts;
  CLI::App* prepare = app.add_subcommand("prepare-data", "tokenize .txt/.jsonl documents into token shards");
  add_prepare_options(prepare, prepare_opts);
  TokenizerTrainingOptions tokenizer_opts;
  CLI::App* tokenizer_training = app.add_subcommand(
      "train-tokenizer", "train a sentencepiece BPE tokenizer with Llama-2's settings on .txt/.jsonl documents");
  add_tokenizer_training_options(tokenizer_training, tokenizer_opts);
  TrainOptions gemm_opts;
  CLI::App* gemm_peak =
      app.add_subcommand("gemm-peak", "GFLOP/s of oneDNN fp32 and bf16 GEMMs on the model's shapes (JSON)");
  gemm_peak->add_option("--config", gemm_opts.config_path, "Hugging Face LlamaConfig config.json")->required();
  gemm_peak->add_option("--batch_size", gemm_opts.batch_size, "micro-batch")->check(integer_at_least(1))->capture_default_str();
  gemm_peak->add_option("--seq_len", gemm_opts.seq_len, "tokens per sample")->check(integer_at_least(1))->capture_default_str();
  gemm_peak->add_option("--tensor_parallel_size", gemm_opts.tensor_parallel_size, "TP degree of the shapes")
      ->check(integer_at_least(1))->capture_default_str();
  gemm_peak->add_option("--threads", gemm_opts.threads, "threads (0: all cores)")
      ->check(integer_at_least(0))->capture_default_str();
  EvalOptions eval_opts;
  CLI::App* eval = app.add_subcommand("eval", "loss and perplexity of a model on a text (any ranks / TP degree)");
  add_eval_options(eval, eval_opts);
  GenerateOptions generate_opts;
  bool generate_json = false;
  CLI::App* generate = app.add_subcommand("generate", "continue a prompt with a model (KV cache; any ranks / TP degree)");
  add_generate_options(generate, generate_opts, generate_json);
  std::string export_checkpoint, export_output;
  int64_t export_shard_mib = 4096;
  CLI::App* exporter = app.add_subcommand("export-hf", "write a checkpoint as a Hugging Face Llama directory");
  exporter->add_option("--checkpoint", export_checkpoint, "checkpoint directory (or one with 'latest')")->required();
  exporter->add_option("--output", export_output, "output directory")->required();
  exporter->add_option("--max_shard_mib", export_shard_mib, "largest safetensors file before sharding")
      ->check(integer_at_least(1))->capture_default_str();
  GgufExportOptions gguf_opts;
  CLI::App* gguf_exporter =
      app.add_subcommand("export-gguf", "write a model as one GGUF file for llama.cpp, Ollama or LM Studio");
  add_export_gguf_options(gguf_exporter, gguf_opts);
  std::string export_tokenizer;
  exporter->add_option("--tokenizer", export_tokenizer,
                       "also write this tokenizer.model with the files a Hugging Face LlamaTokenizer loads "
                       "(tokenizer_config.json, special_tokens_map.json) and generation_config.json");

  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      known = known || sub->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "error: unknown subcommand '%s'; expected one of: %s\n", argv[1], names.c_str());
      return kExitBadInput;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ValidationError& e) {
    std::fprintf(stderr, "error: %s\n", flag_error(e.what()).c_str());
    return kExitBadInput;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s (see --help)\n", e.what());
    return kExitBadInput;
  }
  for (auto& f : finalizers) f();

  if (plan->parsed()) return run_local([&] { return run_plan(plan_opts); });
  if (gemm_peak->parsed()) return run_local([&] { return run_gemm_peak(gemm_opts); });
  if (prepare->parsed())
    return run_on_all_ranks(&argc, &argv, [&](DistributedContext& dist) { return run_prepare(prepare_opts, dist); });
  if (tokenizer_training->parsed()) return run_local([&] { return run_tokenizer_training(tokenizer_opts); });
  if (exporter->parsed())
    return run_local([&] {
      const std::string checkpoint = resolve_checkpoint("--checkpoint", export_checkpoint, "");
      const ModelConfig config = CheckpointReader(checkpoint).config();
      std::unique_ptr<Tokenizer> tokenizer;  // checked before anything is written
      if (!export_tokenizer.empty()) {
        tokenizer = std::make_unique<Tokenizer>(export_tokenizer);
        if (tokenizer->vocab_size() > config.vocab_size)
          throw BadInput(fmt::format("--tokenizer = {} has {} pieces but the model's vocab_size is {}; expected the "
                                     "tokenizer the model was trained with",
                                     export_tokenizer, tokenizer->vocab_size(), config.vocab_size));
      }
      const int files = export_hf(checkpoint, export_output, export_shard_mib << 20);
      if (tokenizer) write_hf_tokenizer_files(*tokenizer, export_tokenizer, export_output, config.max_position_embeddings);
      std::printf("exported %d safetensors file(s) and config.json%s to %s\n", files,
                  export_tokenizer.empty() ? "" : ", the tokenizer files and generation_config.json",
                  export_output.c_str());
      return 0;
    });
  if (gguf_exporter->parsed())
    return run_local([&] {
      const GgufExport e = export_gguf(gguf_opts);
      std::printf("exported %lld tensors (%s) to %s: %s\n", static_cast<long long>(e.tensors), gguf_opts.dtype.c_str(),
                  gguf_opts.output.c_str(), format_bytes(e.bytes).c_str());
      return 0;
    });
  if (generate->parsed())
    return run_on_all_ranks(&argc, &argv, [&](DistributedContext& dist) {
      const Generation g = run_generate(generate_opts, dist);
      if (dist.world().rank() == 0) print_generation(g, generate_json);
      return 0;
    });
  if (eval->parsed())
    return run_on_all_ranks(&argc, &argv, [&](DistributedContext& dist) {
      const EvalResult r = run_eval(eval_opts, dist);
      if (dist.world().rank() == 0)
        std::printf("{\"loss\": %.6f, \"perplexity\": %.4f, \"tokens\": %lld}\n", r.loss, r.perplexity,
                    static_cast<long long>(r.tokens));
      return 0;
    });
  return run_on_all_ranks(&argc, &argv, [&](DistributedContext& dist) { return run_training(train_opts, dist); });
}

}  // namespace llama2
