// The training loop: micro-steps with gradient accumulation, ZeRO-1 AdamW step, per-step log line.
#include "llama2/trainer.h"

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <memory>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "llama2/adamw.h"
#include "llama2/communicator.h"
#include "llama2/errors.h"
#include "llama2/llama.h"
#include "llama2/lr_schedule.h"
#include "llama2/matmul.h"
#include "llama2/metrics.h"
#include "llama2/plan.h"
#include "llama2/synthetic.h"
#include "llama2/checkpoint.h"
#include "llama2/data_sources.h"
#include "llama2/hf_interop.h"
#include "llama2/phases.h"
#include "llama2/preemption.h"

namespace llama2 {
namespace {

int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  return s >= 3600 ? fmt::format("{}h{:02d}m", s / 3600, s / 60 % 60) : fmt::format("{}m{:02d}s", s / 60, s % 60);
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
  return a;
}

void log_startup(const ModelConfig& c, const TrainOptions& o, const ParallelLayout& l, const std::string& threads) {
  spdlog::info("layout: {}", l.describe());
  spdlog::info("threads: {}", threads);
  spdlog::info("model: {} layers, hidden {}, heads {} (kv {}), vocab {}; SP {}, selective checkpoint {}, {}",
               c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.vocab_size,
               c.sequence_parallel_enabled ? "on" : "off", c.selective_checkpoint_enabled ? "on" : "off",
               o.use_mix_precision ? "bf16 mixed precision" : "fp32");
  MemoryPlanInput in{l.tp, l.dp, o.batch_size, o.seq_len, o.use_mix_precision, o.use_zero_1};
  std::string plan = format_plan(c, in, {o.grad_accum_usteps, 1, 1, o.overlap_grad_reduce});
  for (size_t pos; (pos = plan.find('\n')) != std::string::npos; plan.erase(0, pos + 1))
    spdlog::info("plan: {}", plan.substr(0, pos));
}

// Per-rank peak FLOP/s for MFU: the flag, or the best oneDNN fp32 GEMM on the model's widest shape.
double peak_flops_per_rank(const ModelConfig& c, const TrainOptions& o, const ParallelLayout& l) {
  if (o.peak_tflops > 0) return o.peak_tflops * 1e12;
  const int64_t tokens = std::min<int64_t>(o.batch_size * o.seq_len, 4096);
  return measure_gemm_flops(tokens, c.hidden_size, 2 * c.intermediate_size / l.tp, 5);
}

// Mean loss over the same validation windows every time: iteration k of DP rank r reads the micro-batch
// starting at window (k·dp + r)·batch.
double evaluate(const Llama& model, const SampleSource& data, int64_t offset, const TrainOptions& o,
                const DistributedContext& dist) {
  c10::AutoGradMode no_grad(false);
  const ParallelLayout& l = dist.layout();
  at::Tensor sum = at::zeros({1}, at::kDouble);
  for (int64_t k = 0; k < o.eval_iters; ++k) {
    const at::Tensor batch = data.samples(offset + (k * l.dp + l.dp_rank) * o.batch_size, o.batch_size);
    sum += model.loss(batch.narrow(1, 0, o.seq_len), batch.narrow(1, 1, o.seq_len)).to(at::kDouble);
  }
  dist.dp().all_reduce(sum);
  return sum.item<double>() / static_cast<double>(o.eval_iters * l.dp);
}

}  // namespace

// The model config: --config, else --model_path's config.json; both given must describe the same model.
ModelConfig training_config(const TrainOptions& o) {
  if (o.config_path.empty() && o.model_path.empty())
    throw BadInput("--config FILE or --model_path DIR is required; expected a Hugging Face config.json");
  if (o.config_path.empty()) return load_hf_config(o.model_path);
  ModelConfig config = load_model_config(o.config_path);
  if (!o.model_path.empty() && !config_differences(config, load_hf_config(o.model_path)).empty())
    throw BadInput("--config = " + o.config_path + " and --model_path = " + o.model_path +
                   " describe different models; expected the same config (or omit --config)");
  return config;
}

// True on every rank when any rank has received SIGTERM/SIGUSR1.
bool stop_requested(const DistributedContext& dist) {
  at::Tensor flag = at::full({1}, preemption_requested() ? 1 : 0, at::kLong);
  dist.world().all_reduce(flag, ReduceOp::Max);
  return flag.item<int64_t>() != 0;
}

int run_training(TrainOptions o, DistributedContext& dist) {
  install_preemption_handlers();
  if (o.log_all_ranks) {
    spdlog::set_level(spdlog::level::info);
    spdlog::set_pattern(fmt::format("[%Y-%m-%d %H:%M:%S] [%l] [rank {}] %v", dist.world().rank()));
  }
  const ModelConfig config = apply_options(training_config(o), o);
  validate_model_config(config, o.config_path.empty() ? o.model_path : o.config_path);
  resolve_batch_and_parallelism(config, o, dist.world().size());
  dist.set_tensor_parallel(static_cast<int>(o.tensor_parallel_size), o.threads);
  const ParallelLayout& layout = dist.layout();
  MetricsLog metrics(o.output_dir, layout.rank == 0);
  log_startup(config, o, layout, apply_threads(layout));
  const double peak_flops = peak_flops_per_rank(config, o, layout);
  spdlog::info("MFU denominator: {:.1f} GFLOP/s per rank ({})", peak_flops / 1e9,
               o.peak_tflops > 0 ? "--peak_tflops" : "measured: oneDNN fp32 GEMM on the model's MLP shape");

  const TensorParallel tp{&dist.tp(), config.sequence_parallel_enabled && layout.tp > 1};
  Llama model(config, tp, {o.seq_len, o.seed, config.selective_checkpoint_enabled,
                           o.use_mix_precision ? at::kBFloat16 : at::kFloat});
  const std::string checkpoints = o.output_dir + "/checkpoints";
  const std::string resume = resolve_checkpoint(o.resume_ckpt, checkpoints);
  if (resume.empty() && !o.model_path.empty()) {
    load_hf_weights(o.model_path, model, layout.tp_rank);
    spdlog::info("initialized from the Hugging Face model in {}", o.model_path);
  }
  ShardedAdamW optimizer(model.parameters(), dist.tp(), dist.dp(), adamw_options(o, tp.sequence_parallel));
  spdlog::info("optimizer state: {} per rank (measured)", format_bytes(optimizer.state_bytes()));
  const LrSchedule schedule{o.lr, o.min_lr, o.warmup_steps, o.max_steps, o.lr_schedule};
  const int64_t step_samples = o.batch_size * o.grad_accum_usteps * layout.dp;
  const DataSources data = open_data(config, o, step_samples);
  const double step_flops = flops_per_token(config, o.seq_len) * o.seq_len * step_samples;

  TrainingState state{0, 0, 0, o.seed};
  if (!resume.empty()) {
    const auto load_start = std::chrono::steady_clock::now();
    state = load_checkpoint(resume, model, optimizer, dist);
    spdlog::info("checkpoint loaded in {:.2f} s (peak RSS {})",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count(),
                 format_bytes(peak_rss_bytes()));
    if (state.seed != o.seed)
      spdlog::warn("resuming with --seed {} but the checkpoint was trained with seed {}: the data order changes",
                   o.seed, state.seed);
    spdlog::info("resumed from {}: step {}, {} samples consumed", resume, state.step, state.consumed_samples);
  }
  const auto save = [&] {
    const auto start = std::chrono::steady_clock::now();
    const std::string dir = save_checkpoint(checkpoints, o.keep_last, model, optimizer, state, dist);
    spdlog::info("checkpoint {} saved in {:.2f} s (peak RSS {})", dir,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                 format_bytes(peak_rss_bytes()));
  };

  const int64_t stop_step =
      o.steps_this_run > 0 ? std::min(o.max_steps, state.step + o.steps_this_run) : o.max_steps;
  RunSummary summary{state.step, 0, layout.world, layout.tp, layout.dp};
  double timed_s = 0;  // steps of this run after its first (which pays start-up costs)
  int64_t timed_steps = 0;
  const auto finish = [&](int status) {
    summary.steps = state.step;
    summary.seq_per_s = timed_s > 0 ? timed_steps * step_samples / timed_s : 0;
    summary.tokens_per_s = summary.seq_per_s * o.seq_len;
    summary.mfu = timed_s > 0 ? timed_steps * step_flops / timed_s / (peak_flops * layout.world) : 0;
    summary.peak_rss_bytes = peak_rss_bytes();
    summary.planned_rss_bytes =
        plan_memory(config, {layout.tp, layout.dp, o.batch_size, o.seq_len, o.use_mix_precision, o.use_zero_1}).total();
    summary.timed_steps = timed_steps;
    summary.timed_seconds = timed_s;
    metrics.finish(summary);
    return status;
  };
  const auto run_start = std::chrono::steady_clock::now();
  while (state.step < stop_step) {
    const auto start = std::chrono::steady_clock::now();
    optimizer.zero_grad();
    at::Tensor loss_sum = at::zeros({1}, at::kDouble);
    for (int64_t micro = 0; micro < o.grad_accum_usteps; ++micro) {
      const int64_t first = state.consumed_samples +
                            first_sample(0, micro, layout.dp_rank, o.batch_size, o.grad_accum_usteps, layout.dp);
      const at::Tensor batch = [&] {
        ScopedPhase phase(Phase::Data);
        return data.train->samples(first, o.batch_size);  // [b, s+1]
      }();
      const bool overlap = o.overlap_grad_reduce && micro + 1 == o.grad_accum_usteps;
      if (overlap) model.set_gradients_ready_hook([&](const std::vector<size_t>& p) { optimizer.gradients_ready(p); });
      const at::Tensor loss = model.loss(batch.narrow(1, 0, o.seq_len), batch.narrow(1, 1, o.seq_len)) /
                              static_cast<double>(o.grad_accum_usteps);
      model.set_gradients_ready_hook(nullptr);  // the forward has registered its hooks
      loss.backward();
      loss_sum += loss.detach().to(at::kDouble);
    }
    dist.dp().all_reduce(loss_sum);
    StepMetrics m;
    m.step = state.step + 1;
    m.max_steps = o.max_steps;
    m.loss = loss_sum.item<double>() / layout.dp;
    m.lr = schedule.at(m.step);
    const StepResult result = std::isfinite(m.loss) ? optimizer.step(m.lr) : StepResult{m.loss, false};
    if (!result.applied && !o.skip_nonfinite)
      throw RuntimeFailure(fmt::format("step {}: non-finite loss {} or gradient norm {}; step not applied, nothing "
                                       "new saved (--skip_nonfinite skips such steps)",
                                       m.step, m.loss, result.grad_norm));
    if (!result.applied)
      spdlog::warn("step {}: non-finite loss {} or gradient norm {}; step skipped (--skip_nonfinite)", m.step, m.loss,
                   result.grad_norm);
    state.step = m.step;
    state.consumed_samples += step_samples;
    state.consumed_tokens += step_samples * o.seq_len;
    m.grad_norm = result.grad_norm;
    m.step_time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    m.seq_per_s = step_samples / m.step_time_s;
    m.tokens_per_s = m.seq_per_s * o.seq_len;
    m.mfu = step_flops / m.step_time_s / (peak_flops * layout.world);
    m.peak_rss_bytes = peak_rss_bytes();
    m.consumed_tokens = state.consumed_tokens;
    const bool last = m.step == stop_step;
    if (data.validation && o.eval_interval > 0 && (m.step % o.eval_interval == 0 || last)) {
      m.val_loss = evaluate(model, *data.validation, data.validation_offset, o, dist);
      spdlog::info("step {}/{} validation loss {:.4f} (perplexity {:.2f}) over {} samples", m.step, o.max_steps,
                   m.val_loss, std::exp(m.val_loss), o.eval_iters * o.batch_size * layout.dp);
    }
    metrics.write(m);
    const PhaseSeconds phases = take_phase_seconds();
    if (++summary.steps_this_run > 1) {
      timed_s += m.step_time_s, ++timed_steps;
      for (size_t i = 0; i < phases.size(); ++i) summary.phase_seconds[i] += phases[i];
    }
    summary.final_loss = m.loss;
    if (std::isfinite(m.val_loss)) summary.final_val_loss = m.val_loss;
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    if (m.step % o.log_interval == 0 || last)
      spdlog::info("step {}/{} loss {:.4f} lr {:.3e} grad_norm {:.3f} tokens/s {:.0f} MFU {:.1f}% step {:.3f} s "
                   "peak_rss {} ETA {}",
                   m.step, o.max_steps, m.loss, m.lr, m.grad_norm, m.tokens_per_s, 100 * m.mfu, m.step_time_s,
                   format_bytes(m.peak_rss_bytes),
                   format_duration(summary.seconds / summary.steps_this_run * (stop_step - m.step)));
    if (stop_requested(dist)) {
      save();
      spdlog::warn("stopped by signal after step {}; checkpoint saved; exit status {} (requeue to continue)", m.step,
                   kExitPreempted);
      return finish(kExitPreempted);
    }
    if (last || (o.checkpoint_freq > 0 && m.step % o.checkpoint_freq == 0)) save();
  }
  return finish(0);
}

}  // namespace llama2
