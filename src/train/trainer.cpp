// The training loop as named steps: setup (the Trainer's constructor), then per optimizer step train_step,
// evaluate, report and maybe_save, then finish. The order of a step is Trainer::run.
#include "llama2/train/trainer.h"

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <thread>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "llama2/checkpoint/async_save.h"
#include "llama2/checkpoint/checkpoint.h"
#include "llama2/checkpoint/hf_interop.h"
#include "llama2/data/data_sources.h"
#include "llama2/dist/communicator.h"
#include "llama2/plan/machine_rates.h"
#include "llama2/plan/rate_cache.h"
#include "llama2/kernels/packed_weights.h"
#include "llama2/metrics/metrics.h"
#include "llama2/model/llama.h"
#include "llama2/optim/adamw.h"
#include "llama2/optim/lr_schedule.h"
#include "llama2/plan/plan.h"
#include "llama2/data/tokenizer.h"
#include "llama2/infer/generate.h"
#include "llama2/train/hang_watchdog.h"
#include "llama2/train/memory_guard.h"
#include "llama2/train/preemption.h"
#include "llama2/train/run_lock.h"
#include "llama2/train/straggler.h"
#include "llama2/util/human_units.h"
#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"
#include "llama2/util/heap.h"
#include "llama2/util/phases.h"
#include "llama2/util/test_hooks.h"

namespace llama2 {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

AdamWOptions adamw_options(const TrainOptions& o, bool sequence_parallel) {
  AdamWOptions a;
  a.sequence_parallel = sequence_parallel;
  a.beta1 = o.beta1;
  a.beta2 = o.beta2;
  a.eps = o.adam_eps;
  a.weight_decay = o.weight_decay;
  a.max_grad_norm = o.max_grad_norm;
  a.weight_decay_norms = o.weight_decay_norms;
  a.zero_1 = o.use_zero_1;
  a.bucket_numel = o.ddp_bucket_size;
  a.fp32_main_grads = o.main_grad_dtype == "fp32";
  return a;
}

// The model config: --config, else --model_path's config.json (one is given: check_flag_combinations); both given
// must describe the same model.
ModelConfig training_config(const TrainOptions& o) {
  if (o.config_path.empty()) return load_hf_config(o.model_path);
  ModelConfig config = load_model_config(o.config_path);
  if (!o.model_path.empty() && !config_differences(config, load_hf_config(o.model_path)).empty())
    throw BadInput("--config = " + o.config_path + " and --model_path = " + o.model_path +
                   " describe different models; expected the same config (or omit --config)");
  return config;
}

// --async_save holds a copy of each rank's saved state while it is written. Where that copy does not fit beside the
// layout on some node, every rank writes its live state instead and the next optimizer step (the first change to
// that state) waits for the write; a warning says why (collective: the ranks agree).
void fit_async_save(const ModelConfig& c, TrainOptions& o, DistributedContext& dist) {
  if (!o.async_save || o.skip_memory_check) return;
  const ParallelLayout& l = dist.layout();
  const MemoryPlan plan = plan_memory(c, memory_plan_input(o, l.tp, l.dp));
  const std::string over = l.local_rank == 0 ? memory_overflow(plan, l.local_size) : "";
  at::Tensor any_over = at::full({1}, over.empty() ? 0.0 : 1.0, at::kDouble);
  dist.world().all_reduce(any_over, ReduceOp::Max);
  if (any_over.item<double>() == 0) return;
  o.async_snapshot = false;
  spdlog::warn("--async_save: the {} copy a save keeps while it is written does not fit beside this layout{}; saves "
               "write the live state in the background and the next optimizer step waits until they are written",
               format_bytes(plan.snapshot_bytes), over.empty() ? " on another node" : " (" + over + ")");
}

// The validated config with the flags applied; resolves the batch split and sets the TP layout on `dist`.
ModelConfig configure(TrainOptions& o, DistributedContext& dist) {
  if (o.log_all_ranks) {
    spdlog::set_level(spdlog::level::info);
    spdlog::set_pattern(fmt::format("[%Y-%m-%d %H:%M:%S] [%l] [rank {}] %v", dist.world().rank()));
  }
  check_flag_combinations(o);
  const ModelConfig config = apply_options(training_config(o), o);
  validate_model_config(config, o.config_path.empty() ? o.model_path : o.config_path);
  resolve_batch_and_parallelism(config, o, dist.world().size());
  dist.set_tensor_parallel(static_cast<int>(o.tensor_parallel_size), o.threads);
  fit_async_save(config, o, dist);
  return config;
}

void log_startup(const ModelConfig& c, const TrainOptions& o, const ParallelLayout& l, const std::string& threads) {
  spdlog::info("layout: {}", l.describe());
  spdlog::info("threads: {}", threads);
  spdlog::info("model: {} layers, hidden {}, heads {} (kv {}), vocab {}; SP {}, {}", c.num_hidden_layers,
               c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.vocab_size,
               c.sequence_parallel_enabled ? "on" : "off", o.use_mix_precision ? "bf16 mixed precision" : "fp32");
  std::string plan = format_plan(c, memory_plan_input(o, l.tp, l.dp), {o.grad_accum_usteps, 1, 1, o.overlap_grad_reduce});
  for (size_t pos; (pos = plan.find('\n')) != std::string::npos; plan.erase(0, pos + 1))
    spdlog::info("plan: {}", plan.substr(0, pos));
}

// --pack_weights, resolved on this CPU, for every GEMM of a weight from now on.
void apply_weight_packing(const TrainOptions& o) {
  const bool on = resolve_weight_packing(o.pack_weights, o.use_mix_precision);
  set_weight_packing(on);
  spdlog::info("weight packing: {} (--pack_weights {}{})", on ? "on, up to 2 copies of each GEMM weight" : "off",
               o.pack_weights,
               o.pack_weights != "auto" ? ""
               : amx_available()       ? "; oneDNN runs on AMX here, on for bf16"
                                       : "; no AMX here, where it measured within a few percent");
}

// Per-rank peak FLOP/s for MFU, in the precision the GEMMs run in: --peak_tflops, or oneDNN's best on the
// model's widest GEMM (the MLP's), timed for about a second on every rank at once, the largest over all ranks
// taken (a rank that started in a noisy moment gets its node's value). bf16 runs measure fp32 too and warn
// where bf16 is the slower (a CPU without a bf16 matrix engine).
double peak_flops_per_rank(const ModelConfig& c, const TrainOptions& o, const DistributedContext& dist) {
  if (o.peak_tflops > 0) {
    spdlog::info("MFU denominator: {} TFLOP/s per rank (--peak_tflops)", o.peak_tflops);
    return o.peak_tflops * 1e12;
  }
  const int64_t tokens = std::min<int64_t>(o.batch_size * o.seq_len, 4096);
  const auto measure = [&](bool bf16, double seconds) {
    const int64_t n = 2 * c.intermediate_size / dist.layout().tp;
    const std::string key = fmt::format("peak gemm {}x{}x{} {} {} s", tokens, c.hidden_size, n, bf16 ? "bf16" : "fp32",
                                        seconds);
    const double rate = cached_rate(key, o.remeasure, [&] {
      return measure_gemm_flops(tokens, c.hidden_size, n, 5, bf16, seconds);
    });
    at::Tensor best = at::full({1}, rate, at::kDouble);
    dist.world().all_reduce(best, ReduceOp::Max);
    return best.item<double>();
  };
  const double peak = measure(o.use_mix_precision, 1.0);
  const std::string cache = rate_cache_path();
  spdlog::info("MFU denominator: {:.1f} GFLOP/s per rank (oneDNN {} GEMM on the model's MLP shape, best over 1 s, "
               "largest over the ranks; {})",
               peak / 1e9, o.use_mix_precision ? "bf16" : "fp32",
               cache.empty() ? "measured now: no $XDG_CACHE_HOME or $HOME for the rate cache"
                             : "this machine's measurement, cached in " + cache + "; --remeasure measures again");
  if (o.use_mix_precision) {
    const double fp32 = measure(false, 0.3);
    if (fp32 > peak)
      spdlog::warn("bf16 GEMMs run at {:.1f} GFLOP/s per rank here, fp32 at {:.1f}: this CPU has no bf16 matrix "
                   "engine; training without --use_mix_precision is faster",
                   peak / 1e9, fp32 / 1e9);
  }
  return peak;
}

// Rank 0 holds the run lock of --output_dir (created first, if need be); other ranks hold none.
std::unique_ptr<RunLock> lock_output_dir(const std::string& output_dir, const ParallelLayout& layout) {
  if (layout.rank != 0) return nullptr;
  ensure_directory(output_dir, "--output_dir");
  return std::make_unique<RunLock>(output_dir);
}

class Trainer {
 public:
  // Setup: config and layout, start-up log, model (fresh, from --model_path, or resumed), optimizer, data.
  Trainer(TrainOptions options, DistributedContext& dist);
  // Optimizer steps until --max_steps (or --steps_this_run more), or a stop signal; returns the exit status.
  int run();

 private:
  void resume(const std::string& dir);
  void map_data_position(const std::string& dir, const TrainingState& now);
  void keep_resumed_state();                // a resumed run with no step to take saves here what it loaded
  StepMetrics train_step();                 // micro-batches with accumulation, then one AdamW step
  at::Tensor micro_step(int64_t micro);     // forward and backward of one micro-batch → its loss / accum
  double optimizer_step(const StepMetrics& m);  // → the gradient norm; refuses or skips non-finite steps
  void correct_peak(StepMetrics& m);        // an MFU above 100%: the step's rate becomes the peak
  double validation_loss(const ValidationSet& set);  // its mean loss over --eval_iters micro-batches per DP rank
  void evaluate(StepMetrics& m);            // the validation loss, when due
  std::string sample(int64_t step);         // a greedy continuation of --sample_prompt ("" when not due)
  void report(StepMetrics& m);              // phase tally, the ranks' compute spread, metrics, the log lines
  void maybe_save(int64_t step);            // at --checkpoint_freq and at the last step
  void save();                              // with --async_save only a snapshot; the write goes on in the background
  void wait_for_save_in_flight(int64_t step);  // one writing the live state, before the optimizer step changes it
  void publish_pending_save();              // waits for the save in flight, if any, and publishes it
  int preempt(int64_t step);                // a stop signal: save, then the requeue status
  int finish(int status);                   // results.json

  TrainOptions o_;
  DistributedContext& dist_;
  const ModelConfig config_;
  const ParallelLayout& layout_;
  StatusBoard& board_;     // this rank's activity and progress, sent to every rank with its heartbeats
  HangWatchdog watchdog_;  // from here on, a stall ends the job with kExitHang, a silent rank with kExitLost
  std::unique_ptr<RunLock> lock_;  // rank 0's, before anything is written to --output_dir
  MetricsLog metrics_;
  const std::string checkpoints_;
  AsyncCheckpointer saver_;
  double peak_flops_ = 0;
  std::unique_ptr<Llama> model_;
  std::unique_ptr<ShardedAdamW> optimizer_;
  LrSchedule schedule_;
  int64_t step_samples_ = 0;  // global samples per optimizer step
  double step_flops_ = 0;
  DataSources data_;
  TrainingState state_;
  int64_t stop_step_ = 0;
  std::unique_ptr<Tokenizer> sample_tokenizer_;  // with --sample_interval
  std::vector<int> sample_prompt_;               // BOS + the encoded --sample_prompt
  RunSummary summary_;
  Clock::time_point run_start_;
};

Trainer::Trainer(TrainOptions options, DistributedContext& dist)
    : o_(std::move(options)),
      dist_(dist),
      config_(configure(o_, dist)),
      layout_(dist.layout()),
      board_(dist.status_board()),
      watchdog_(board_, dist.heartbeat(), {o_.collective_timeout, o_.heartbeat_timeout, o_.output_dir}),
      lock_(lock_output_dir(o_.output_dir, layout_)),
      metrics_(o_.output_dir, layout_.rank == 0),
      checkpoints_(o_.output_dir + "/checkpoints"),
      saver_(checkpoints_, o_.keep_last, dist, o_.async_save, o_.async_snapshot) {
  log_startup(config_, o_, layout_, apply_threads(layout_));
  apply_weight_packing(o_);
  if (!o_.skip_memory_check && layout_.local_rank == 0)
    check_memory_fits(plan_memory(config_, memory_plan_input(o_, layout_.tp, layout_.dp)), layout_.local_size);
  peak_flops_ = peak_flops_per_rank(config_, o_, dist_);
  const TensorParallel tp{&dist_.tp(), config_.sequence_parallel_enabled && layout_.tp > 1};
  model_ = std::make_unique<Llama>(config_, tp, ModelOptions{o_.seq_len, o_.seed,
                                                             o_.use_mix_precision ? at::kBFloat16 : at::kFloat});
  const std::string resume_dir = resolve_checkpoint("--resume_ckpt", o_.resume_ckpt, checkpoints_);
  if (resume_dir.empty() && !o_.model_path.empty()) {
    load_hf_weights(o_.model_path, *model_, layout_.tp_rank);
    spdlog::info("initialized from the Hugging Face model in {}", o_.model_path);
  }
  optimizer_ = std::make_unique<ShardedAdamW>(model_->parameters(), dist_.tp(), dist_.dp(),
                                              adamw_options(o_, tp.sequence_parallel));
  spdlog::info("optimizer state: {} per rank (fp32 master, exp_avg, exp_avg_sq of this rank's shard)", format_bytes(optimizer_->state_bytes()));
  if (const std::string heap = heap_summary(); !heap.empty()) spdlog::info("heap: {}", heap);
  schedule_ = {o_.lr, o_.min_lr, o_.warmup_steps, o_.max_steps, o_.lr_schedule};
  step_samples_ = o_.batch_size * o_.grad_accum_usteps * layout_.dp;
  data_ = open_data(config_, o_, step_samples_);
  step_flops_ = flops_per_token(config_, o_.seq_len) * o_.seq_len * step_samples_;
  watchdog_.set_first_step_estimate(step_flops_ / (peak_flops_ * layout_.world));  // plan's GEMM-bound step time
  state_ = {0, 0, 0, o_.seed, o_.seq_len, step_samples_, data_.corpus, data_.tokenizer};
  if (!resume_dir.empty()) resume(resume_dir);
  stop_step_ = o_.steps_this_run > 0 ? std::min(o_.max_steps, state_.step + o_.steps_this_run) : o_.max_steps;
  if (o_.sample_interval > 0) {
    sample_tokenizer_ = std::make_unique<Tokenizer>(o_.tokenizer);
    sample_prompt_ = encode_for_model(*sample_tokenizer_, o_.sample_prompt, o_.tokenizer, config_.vocab_size);
    if (static_cast<int64_t>(sample_prompt_.size()) + o_.sample_tokens > o_.seq_len)
      throw BadInput(fmt::format("--sample_prompt ({} tokens with BOS) + --sample_tokens {} exceed --seq_len {}; "
                                 "expected a shorter prompt or fewer tokens",
                                 sample_prompt_.size(), o_.sample_tokens, o_.seq_len));
  }
  summary_ = {state_.step, 0, layout_.world, layout_.tp, layout_.dp};
}

// The checkpoint's data position in this run's terms: the same seq_len, global batch, corpus and tokenizer, or
// (with --allow_data_change) the tokens consumed so far in samples of this run's seq_len.
void Trainer::map_data_position(const std::string& dir, const TrainingState& now) {
  std::vector<std::string> differ;
  const auto compare = [&](const std::string& what, const auto& saved, const auto& current, bool recorded) {
    if (recorded && saved != current) differ.push_back(fmt::format("{} {} (checkpoint) vs {} (this run)", what, saved, current));
  };
  compare("--seq_len", state_.seq_len, now.seq_len, state_.seq_len > 0);
  compare("global batch", state_.global_batch, now.global_batch, state_.global_batch > 0);
  compare("corpus (index.json sha256)", state_.corpus, now.corpus, !state_.corpus.empty());
  compare("tokenizer sha256", state_.tokenizer, now.tokenizer, !state_.corpus.empty());
  if (!differ.empty() && !o_.allow_data_change)
    throw BadInput(fmt::format("{} was trained with other data: {}; resuming would misread its data position. Expected "
                               "the same, or --allow_data_change to keep the position in tokens",
                               dir, fmt::join(differ, "; ")));
  if (!differ.empty()) {
    const int64_t samples = state_.consumed_tokens / now.seq_len;
    spdlog::warn("--allow_data_change: {}; {} tokens consumed → sample {} of --seq_len {} (was sample {})",
                 fmt::join(differ, "; "), state_.consumed_tokens, samples, now.seq_len, state_.consumed_samples);
    state_.consumed_samples = samples;
  }
  state_.seq_len = now.seq_len;
  state_.global_batch = now.global_batch;
  state_.corpus = now.corpus;
  state_.tokenizer = now.tokenizer;
}

void Trainer::resume(const std::string& dir) {
  const auto start = Clock::now();
  const TrainingState fresh = state_;
  state_ = load_checkpoint(dir, *model_, *optimizer_, dist_);
  spdlog::info("checkpoint loaded in {:.2f} s (peak RSS {})", seconds_since(start), format_bytes(peak_rss_bytes()));
  map_data_position(dir, fresh);
  if (state_.seed != o_.seed)
    spdlog::warn("resuming with --seed {} but the checkpoint was trained with seed {}: the data order changes",
                 o_.seed, state_.seed);
  spdlog::info("resumed from {}: step {}, {} samples consumed", dir, state_.step, state_.consumed_samples);
  if (layout_.rank == 0) {
    const std::string moved = roll_back_after(checkpoints_, state_.step);
    if (!moved.empty()) spdlog::warn("rolled back to step {}: later checkpoints {}", state_.step, moved);
  }
  dist_.world().barrier();
}

int Trainer::run() {
  run_start_ = Clock::now();
  if (state_.step == 0) sample(0);
  keep_resumed_state();
  while (state_.step < stop_step_) {
    StepMetrics m = train_step();
    evaluate(m);
    m.sample = sample(m.step);
    report(m);
    if (preemption_agreed(dist_)) return preempt(m.step);
    maybe_save(m.step);
  }
  return finish(0);
}

// A run that starts at its last step (the checkpoint it resumed reached --max_steps) trains nothing; when that
// checkpoint is not one of this output directory's it is saved here at this run's layout: a reshard without steps.
void Trainer::keep_resumed_state() {
  if (state_.step > 0 && state_.step == stop_step_ &&
      !std::filesystem::exists(checkpoints_ + "/" + checkpoint_name(state_.step) + "/meta.json"))
    save();
}

StepMetrics Trainer::train_step() {
  board_.set_activity(Activity::Step, state_.step + 1);
  const auto start = Clock::now();
  const double waited_before = collective_wait_seconds();
  optimizer_->zero_grad();
  at::Tensor loss_sum = at::zeros({1}, at::kDouble);
  for (int64_t micro = 0; micro < o_.grad_accum_usteps; ++micro) loss_sum += micro_step(micro);
  dist_.dp().all_reduce(loss_sum);
  StepMetrics m;
  m.step = state_.step + 1;
  m.max_steps = o_.max_steps;
  m.loss = loss_sum.item<double>() / layout_.dp;
  m.lr = schedule_.at(m.step);
  wait_for_save_in_flight(m.step);
  m.grad_norm = optimizer_step(m);
  state_.step = m.step;
  state_.consumed_samples += step_samples_;
  state_.consumed_tokens += step_samples_ * o_.seq_len;
  m.step_time_s = seconds_since(start);
  board_.record_step_seconds(m.step_time_s);
  m.compute_s = m.step_time_s - (collective_wait_seconds() - waited_before);
  m.seq_per_s = step_samples_ / m.step_time_s;
  m.tokens_per_s = m.seq_per_s * o_.seq_len;
  m.mfu = step_flops_ / m.step_time_s / (peak_flops_ * layout_.world);
  if (m.mfu > 1 && summary_.steps_this_run > 0) correct_peak(m);
  m.peak_rss_bytes = peak_rss_bytes();
  m.consumed_tokens = state_.consumed_tokens;
  if (data_.blend) {
    const std::vector<int64_t> counts = data_.blend->counts(state_.consumed_samples);
    for (size_t c = 0; c < counts.size(); ++c) m.corpus_tokens.emplace_back(data_.corpus_names[c], counts[c] * o_.seq_len);
  }
  return m;
}

at::Tensor Trainer::micro_step(int64_t micro) {
  board_.progress();
  if (test_hooks().delay_rank == layout_.rank)  // a straggler of known extra compute, for the tests
    std::this_thread::sleep_for(std::chrono::duration<double>(test_hooks().delay_s));
  const int64_t first = state_.consumed_samples +
                        first_sample(0, micro, layout_.dp_rank, o_.batch_size, o_.grad_accum_usteps, layout_.dp);
  const at::Tensor batch = [&] {
    ScopedPhase phase(Phase::Data);
    return data_.train->samples(first, o_.batch_size);  // [b, s+1]
  }();
  // The last micro-step's gradients are final: DP buckets are reduced as backward completes them.
  if (o_.overlap_grad_reduce && micro + 1 == o_.grad_accum_usteps)
    model_->set_gradients_ready_hook([this](const std::vector<size_t>& p) { optimizer_->gradients_ready(p); });
  const double accum = static_cast<double>(o_.grad_accum_usteps);  // each micro-step's loss is 1/accum of the step's
  const at::Tensor loss =
      model_->loss(batch.narrow(1, 0, o_.seq_len), batch.narrow(1, 1, o_.seq_len), 1 / accum) / accum;
  model_->set_gradients_ready_hook(nullptr);  // the forward has registered its hooks
  loss.backward();
  return loss.detach().to(at::kDouble);
}

// A steady step faster than the peak allows: the peak was under-measured (the machine was busy at start-up).
// The step's own rate per rank becomes the peak, so no MFU above 100% is reported.
void Trainer::correct_peak(StepMetrics& m) {
  const double achieved = step_flops_ / m.step_time_s / layout_.world;
  spdlog::warn("step {}: MFU {:.1f}% of {:.1f} GFLOP/s per rank: that peak was under-measured; MFU is now over "
               "{:.1f} GFLOP/s per rank, this step's rate",
               m.step, 100 * m.mfu, peak_flops_ / 1e9, achieved / 1e9);
  peak_flops_ = achieved;
  m.mfu = 1;
}

double Trainer::optimizer_step(const StepMetrics& m) {
  const StepResult result = std::isfinite(m.loss) ? optimizer_->step(m.lr) : StepResult{m.loss, false};
  if (!result.applied && !o_.skip_nonfinite)
    throw RuntimeFailure(fmt::format("step {}: non-finite loss {} or gradient norm {}; step not applied, nothing "
                                     "new saved (--skip_nonfinite skips such steps)",
                                     m.step, m.loss, result.grad_norm));
  if (!result.applied)
    spdlog::warn("step {}: non-finite loss {} or gradient norm {}; step skipped (--skip_nonfinite)", m.step, m.loss,
                 result.grad_norm);
  return result.grad_norm;
}

// Mean loss over the same validation windows every time: iteration k of DP rank r reads the micro-batch
// (k·dp + r) of the split, so every DP size sees the same samples. Collective over DP.
double Trainer::validation_loss(const ValidationSet& set) {
  at::Tensor sum = at::zeros({1}, at::kDouble);
  for (int64_t k = 0; k < o_.eval_iters; ++k) {
    const int64_t first = set.offset + (k * layout_.dp + layout_.dp_rank) * o_.batch_size;
    const at::Tensor batch = set.samples->samples(first, o_.batch_size);
    sum += model_->loss(batch.narrow(1, 0, o_.seq_len), batch.narrow(1, 1, o_.seq_len)).to(at::kDouble);
  }
  dist_.dp().all_reduce(sum);
  return sum.item<double>() / static_cast<double>(o_.eval_iters * layout_.dp);
}

// The validation loss of each corpus and, weighted as the blend reads them, of the whole.
void Trainer::evaluate(StepMetrics& m) {
  if (data_.validation.empty() || o_.eval_interval <= 0 || (m.step % o_.eval_interval != 0 && m.step != stop_step_))
    return;
  board_.set_activity(Activity::Eval, m.step);
  c10::AutoGradMode no_grad(false);
  double weighted = 0, weights = 0;
  std::string per_corpus;
  for (const ValidationSet& set : data_.validation) {
    const double loss = validation_loss(set);
    weighted += set.weight * loss;
    weights += set.weight;
    if (data_.blend) {
      m.val_losses.emplace_back(set.name, loss);
      per_corpus += fmt::format("{}{} {:.4f}", per_corpus.empty() ? "; " : ", ", set.name, loss);
    }
  }
  m.val_loss = weighted / weights;
  spdlog::info("step {}/{} validation loss {:.4f} (perplexity {:.2f}) over {} samples{}{}", m.step, o_.max_steps,
               m.val_loss, std::exp(m.val_loss), o_.eval_iters * o_.batch_size * layout_.dp,
               per_corpus.empty() ? "" : " per corpus", per_corpus);
}

std::string Trainer::sample(int64_t step) {
  if (!sample_tokenizer_ || (step % o_.sample_interval != 0 && step != stop_step_)) return "";
  board_.set_activity(Activity::Sample, step);
  Sampler greedy({0.0, 0, 1.0, 0});
  const std::vector<int> tokens =
      generate_tokens(*model_, sample_prompt_, o_.sample_tokens, sample_tokenizer_->eos_id(), greedy);
  const std::string text = sample_tokenizer_->decode(tokens);
  spdlog::info("step {}/{} sample: {} ⟶ {}", step, o_.max_steps, o_.sample_prompt, text);
  return text;
}

void Trainer::report(StepMetrics& m) {
  ComputeSpread spread;
  if (layout_.world > 1) {
    spread = compute_spread(m.compute_s, dist_.world());
    m.compute_s_min = spread.min_s;
    m.compute_s_max = spread.max_s;
  }
  LinkSpread links;
  if (layout_.rank == 0) links = link_spread(board_);
  if (links.hosts.size() > 1) {
    m.link_rtt_s_median = links.median_s;
    m.link_rtt_s_max = links.max_s;
  }
  metrics_.write(m);
  const PhaseSeconds phases = take_phase_seconds();
  if (++summary_.steps_this_run > 1) {  // the run's first step pays start-up costs: not timed
    summary_.timed_seconds += m.step_time_s;
    ++summary_.timed_steps;
    for (size_t i = 0; i < phases.size(); ++i) summary_.phase_seconds[i] += phases[i];
  }
  summary_.final_loss = m.loss;
  if (std::isfinite(m.val_loss)) summary_.final_val_loss = m.val_loss;
  summary_.seconds = seconds_since(run_start_);
  if (m.step % o_.log_interval != 0 && m.step != stop_step_) return;
  spdlog::info("step {}/{} loss {:.4f} lr {:.3e} grad_norm {:.3f} tokens/s {:.0f} MFU {:.1f}% step {:.3f} s "
               "peak_rss {} ETA {}",
               m.step, o_.max_steps, m.loss, m.lr, m.grad_norm, m.tokens_per_s, 100 * m.mfu, m.step_time_s,
               format_bytes(m.peak_rss_bytes),
               format_duration(summary_.seconds / summary_.steps_this_run * (stop_step_ - m.step)));
  if (const std::string straggler = spread.straggler(); !straggler.empty())
    spdlog::warn("step {}: {}", m.step, straggler);
  if (const std::string link = links.slow_link(); !link.empty()) spdlog::warn("step {}: {}", m.step, link);
}

void Trainer::maybe_save(int64_t step) {
  if (saver_.all_written()) publish_pending_save();  // its writes have finished on every rank
  if (step == stop_step_ || (o_.checkpoint_freq > 0 && step % o_.checkpoint_freq == 0)) save();
}

void Trainer::wait_for_save_in_flight(int64_t step) {
  if (o_.async_snapshot || saver_.pending_step() < 0) return;  // with a snapshot nothing reads the live state
  board_.set_activity(Activity::Checkpoint, saver_.pending_step());
  const double waited = saver_.wait_for_state();
  board_.set_activity(Activity::Step, step);
  if (waited > 0.01)
    spdlog::info("step {}: the optimizer step waited {:.2f} s for checkpoint {}'s write of the live state", step,
                 waited, saver_.pending_step());
}

void Trainer::save() {
  board_.set_activity(Activity::Checkpoint, state_.step);
  const double held_s = saver_.save(*model_, *optimizer_, state_);
  if (o_.async_save && !o_.async_snapshot)
    spdlog::info("checkpoint of step {}: training held {:.2f} s, the live state written in the background until the "
                 "next optimizer step (peak RSS {})", state_.step, held_s, format_bytes(peak_rss_bytes()));
  else if (o_.async_save)
    spdlog::info("checkpoint of step {}: training held {:.2f} s to copy this rank's state, written in the background "
                 "(peak RSS {})", state_.step, held_s, format_bytes(peak_rss_bytes()));
  else
    spdlog::info("checkpoint of step {} saved in {:.2f} s (peak RSS {})", state_.step, held_s,
                 format_bytes(peak_rss_bytes()));
}

void Trainer::publish_pending_save() {
  if (saver_.pending_step() < 0) return;
  board_.set_activity(Activity::Checkpoint, saver_.pending_step());
  saver_.finish();
}

int Trainer::preempt(int64_t step) {
  save();
  publish_pending_save();
  spdlog::warn("stopped by signal after step {}; checkpoint saved; exit status {} (requeue to continue)", step,
               kExitPreempted);
  return finish(kExitPreempted);
}

int Trainer::finish(int status) {
  publish_pending_save();
  board_.set_activity(Activity::Finish, state_.step);
  summary_.steps = state_.step;
  const double timed_s = summary_.timed_seconds;
  summary_.seq_per_s = timed_s > 0 ? summary_.timed_steps * step_samples_ / timed_s : 0;
  summary_.tokens_per_s = summary_.seq_per_s * o_.seq_len;
  summary_.mfu = timed_s > 0 ? summary_.timed_steps * step_flops_ / timed_s / (peak_flops_ * layout_.world) : 0;
  summary_.peak_rss_bytes = peak_rss_bytes();
  summary_.planned_rss_bytes = plan_memory(config_, memory_plan_input(o_, layout_.tp, layout_.dp)).total();
  metrics_.finish(summary_);
  return status;
}

}  // namespace

int run_training(TrainOptions options, DistributedContext& dist) {
  install_preemption_handlers();
  Trainer trainer(std::move(options), dist);
  return trainer.run();
}

}  // namespace llama2
