// Parameter, FLOP and memory arithmetic for `plan` and the start-up summary.
#include "llama2/plan/plan.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "llama2/kernels/packed_weights.h"
#include "llama2/model/attention.h"
#include "llama2/parallel/layers.h"
#include "llama2/util/human_units.h"

namespace llama2 {
namespace {

int64_t per_layer_params(const ModelConfig& c) {
  const int64_t h = c.hidden_size, d = c.head_dim();
  const int64_t qkv = (c.num_attention_heads + 2 * c.num_key_value_heads) * d * h;
  const int64_t o = c.num_attention_heads * d * h;
  const int64_t mlp = 3 * c.intermediate_size * h;
  return qkv + o + mlp + 2 * h;
}


// Peak RSS of a rank before any model state: libtorch, oneDNN and Open MPI loaded and initialised
// (measured: the tiny config's peak minus its parameters, states and activations).
constexpr int64_t kRuntimeBytes = int64_t{240} << 20;

}  // namespace

int64_t embedding_parameter_count(const ModelConfig& c) { return c.vocab_size * c.hidden_size; }

int64_t parameter_count(const ModelConfig& c) {
  const int64_t head = c.tie_word_embeddings ? 0 : embedding_parameter_count(c);
  return embedding_parameter_count(c) + c.num_hidden_layers * per_layer_params(c) + c.hidden_size + head;
}

double flops_per_token(const ModelConfig& c, int64_t seq_len) {
  // With tied embeddings the lm_head still runs its GEMMs: count its weights once as the head.
  const double n = static_cast<double>(parameter_count(c) - embedding_parameter_count(c) +
                                       (c.tie_word_embeddings ? embedding_parameter_count(c) : 0));
  return 6.0 * n + 12.0 * static_cast<double>(c.num_hidden_layers) * c.hidden_size * seq_len;
}

MemoryPlanInput memory_plan_input(const TrainOptions& o, int64_t tp, int64_t dp) {
  return {tp, dp, o.batch_size, o.seq_len, o.use_mix_precision, o.use_zero_1, o.main_grad_dtype == "fp32",
          resolve_weight_packing(o.pack_weights, o.use_mix_precision), o.async_save && o.async_snapshot};
}

MemoryPlan plan_memory(const ModelConfig& c, const MemoryPlanInput& in) {
  const int64_t t = in.tp, h = c.hidden_size, vocab = c.padded_vocab_size(t);
  const int64_t norms = (2 * c.num_hidden_layers + 1) * h;
  const int64_t sharded = parameter_count(c) - norms + (vocab - c.vocab_size) * h * (c.tie_word_embeddings ? 1 : 2);
  MemoryPlan m;
  m.local_params = sharded / t + norms;
  const int64_t elem = in.bf16 ? 2 : 4;
  m.weight_bytes = m.local_params * elem;
  if (in.packed_weights) {  // every weight but the norms and the input embedding (unless it is the lm_head too)
    const int64_t embedding = c.tie_word_embeddings ? 0 : vocab / t * h;
    m.packed_bytes = 2 * (m.local_params - norms - embedding) * elem;
  }
  const int64_t grad = in.grad_bytes_per_param();
  m.grad_bytes = m.local_params * grad;
  const int64_t ranks = in.zero_1 ? in.dp : 1;
  const int64_t shard = (m.local_params + ranks - 1) / ranks;
  m.optimizer_bytes = shard * 4 * (in.bf16 ? 3 : 2);
  // bf16 saves the master, not the bf16 weights; fp32 saves the weights (on DP rank 0; an upper bound elsewhere).
  if (in.async_save) m.snapshot_bytes = m.optimizer_bytes + (in.bf16 ? 0 : m.weight_bytes);
  // The reduction runs in place in the gradients' dtype; ZeRO-1 receives its shard into a buffer of its own, and
  // bf16 gradients are widened to fp32 for the optimizer (the shard, or all of them without ZeRO-1).
  const bool own_shard = in.zero_1 && in.dp > 1;
  m.reduce_bytes = (own_shard ? shard * grad : 0) + (grad == 2 ? (own_shard ? shard : m.local_params) * 4 : 0);
  // Tensors backward keeps per layer and token (elements): both norm outputs as the projections read them
  // (gathered with SP), q/k/v in attention's layout and its output, the two residual-stream tensors (s/tp
  // with SP), SwiGLU's input and output. Core attention keeps no probabilities (flash attention: one fp32
  // log-sum-exp per query row), with selective checkpointing on or off.
  const double tokens = static_cast<double>(in.seq_len) * in.micro_batch, td = static_cast<double>(t);
  const double hd = static_cast<double>(h), sp = c.sequence_parallel_enabled ? td : 1;
  const double q = static_cast<double>(c.num_attention_heads) * c.head_dim();
  const double qkv = q + 2.0 * c.num_key_value_heads * c.head_dim();
  const double per_token = 2 * hd + (qkv + q) / td + 2 * hd / sp + 3.0 * c.intermediate_size / td;
  const double per_layer = tokens * per_token * elem + tokens * c.num_attention_heads / td * 4;
  // The heap holds more than the live tensors (freed blocks between kept ones are reused only by smaller
  // ones): kHeapOverhead was measured on the 58M model (peak RSS per layer over the bytes above). Attention's
  // backward adds q's gradient in fp32 per worker (kWorkers: the kernels' workers per rank, the layouts' usual 1 or
  // 2 threads), the output's gradient in q's layout, and the gradients of q, k and v.
  constexpr double kHeapOverhead = 1.2, kWorkers = 2;
  const double attention_backward = tokens / td * ((kWorkers * 4 + 2 * elem) * q + elem * (qkv - q));
  m.activation_bytes = static_cast<int64_t>(kHeapOverhead * per_layer * c.num_hidden_layers + attention_backward);
  // The fused loss: one chunk's exponentials in the inputs' type (≤ 32 MiB), dw [V/t, h] fp32, dx [tokens, h];
  // per worker a chunk's part of dx and a tile of logits in fp32, and a gradient tile and its transpose.
  const double vocab_local = static_cast<double>(vocab) / td;
  const double chunk_rows =
      std::min(tokens, static_cast<double>(cross_entropy_chunk_rows(static_cast<int64_t>(vocab_local), elem)));
  const double loss_workers = kWorkers * chunk_rows * (hd * 4 + kCrossEntropyVocabBlock * (4 + 2 * elem));
  m.loss_bytes = static_cast<int64_t>(chunk_rows * vocab_local * elem + vocab_local * hd * 4 + tokens * hd * elem +
                                      loss_workers);
  m.runtime_bytes = kRuntimeBytes;
  return m;
}

double attention_flops(double b, double s, double width) {
  // Scores and values are 4·b·s²·width FLOPs forward over full rows; backward recomputes the scores and takes four
  // more products (dv, dp, dk, dq): 3.5 times the forward in all. Causal tiles compute (n+1)/2n of the full rows
  // (n query tiles of kAttentionBlockRows).
  const double blocks = std::ceil(s / static_cast<double>(kAttentionBlockRows)), causal = (blocks + 1) / (2 * blocks);
  return causal * 4.0 * b * s * s * width * 3.5;
}

StepEstimate estimate_step(const ModelConfig& c, const MemoryPlanInput& in, const StepPlanInput& step,
                           const MachineRates& r) {
  const double t = static_cast<double>(in.tp), dp = static_cast<double>(in.dp), micro = static_cast<double>(step.grad_accum);
  const double b = static_cast<double>(in.micro_batch), s = static_cast<double>(in.seq_len), tokens = b * s;
  const double h = static_cast<double>(c.hidden_size), inter = static_cast<double>(c.intermediate_size);
  const double layers = static_cast<double>(c.num_hidden_layers), elem = in.bf16 ? 2 : 4;
  const double qkv = static_cast<double>(c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim();
  const double sp = c.sequence_parallel_enabled ? t : 1;
  StepEstimate e;
  // Projections: forward, data gradient and weight gradient, 3 · 2·m·k·n each, per layer; the lm_head's (the last
  // shape) run inside the fused loss.
  const std::vector<GemmShape> shapes = model_gemm_shapes(c, in.micro_batch * in.seq_len, in.tp);
  const auto gemm_flops = [](const GemmShape& g) { return 6.0 * g.m * g.k * g.n; };
  double flops = 0;
  for (size_t i = 0; i + 1 < shapes.size(); ++i) flops += gemm_flops(shapes[i]) * layers;
  e.gemm = micro * flops / r.gemm_flops;
  e.attention = micro * layers * attention_flops(b, s, h / t) / r.attention_flops;
  // Loss: the fused lm_head and cross-entropy at its measured rate.
  e.loss = micro * gemm_flops(shapes.back()) / r.loss_flops;
  // Streaming kernels per layer, counted pass by pass over [tokens, width] tensors: norms, residuals and
  // autograd's gradient sums ~25 passes of h (of h/t with SP), the fused rotary split ~8 of the qkv width,
  // SwiGLU 8 of the intermediate width (forward and backward together). kStreamOverhead: the 58M model's
  // measured elementwise time over these ideal passes at the measured bandwidth (autograd's temporaries and
  // gradient copies, fp32 statistics, the embedding).
  constexpr double kStreamOverhead = 2;
  e.elementwise = kStreamOverhead * micro * layers * tokens * elem * (25 * h / sp + 8 * qkv / t + 8 * inter / t) /
                  r.memory_bytes_per_s;
  // Optimizer: AdamW reads p, g, m, v and writes p, m, v, 28 bytes per element of this rank's shard; zeroing
  // and the gradient norm stream the local gradients once more each. These buffers stay resident: they
  // stream at about twice the rate measured on fresh tensors (page faults included), kResidentSpeedup.
  constexpr double kResidentSpeedup = 2;
  const double local = static_cast<double>(plan_memory(c, in).local_params);
  const double shard = local / (in.zero_1 ? dp : 1);
  e.optimizer = (28 * shard + 8 * local) / (kResidentSpeedup * r.memory_bytes_per_s);
  // Collectives move (n-1)/n of their buffer per rank; bandwidth is the node's when the group stays inside one.
  const double ranks_per_node = static_cast<double>(std::max<int64_t>(1, step.ranks_per_node));
  const auto bandwidth = [&](bool inside_node) {
    return inside_node ? r.intra_node_bytes_per_s : r.network_bytes_per_s / ranks_per_node;
  };
  if (in.tp > 1)  // per layer 4 collectives forward and their 4 conjugates backward, plus embedding and loss
    e.communication = micro * (8 * layers + 4) * (t - 1) / t * tokens * h * elem / bandwidth(in.tp <= step.ranks_per_node);
  if (in.dp > 1) {
    const double bw = bandwidth(step.nodes == 1);
    const double reduce = (in.zero_1 ? 1 : 2) * (dp - 1) / dp * local * in.grad_bytes_per_param() / bw;
    e.communication += in.zero_1 ? (dp - 1) / dp * local * elem / bw : 0;      // ZeRO-1 parameter all-gather
    // Overlapped, the buckets hide behind the last micro-batch's backward (about 2/3 of its compute), all
    // but the last one.
    const double backward = (e.gemm + e.attention + e.elementwise) / micro * 2 / 3;
    e.grad_reduce = step.overlap_grad_reduce ? std::max(reduce / layers, reduce - backward) : reduce;
  }
  return e;
}

std::vector<GemmShape> model_gemm_shapes(const ModelConfig& c, int64_t tokens, int64_t tp) {
  const int64_t h = c.hidden_size, d = c.head_dim();
  return {{"qkv_proj", tokens, h, (c.num_attention_heads + 2 * c.num_key_value_heads) * d / tp},
          {"o_proj", tokens, c.num_attention_heads * d / tp, h},
          {"gate_up_proj", tokens, h, 2 * c.intermediate_size / tp},
          {"down_proj", tokens, c.intermediate_size / tp, h},
          {"lm_head", tokens, h, c.padded_vocab_size(tp) / tp}};
}

std::string format_plan(const ModelConfig& c, const MemoryPlanInput& in, const StepPlanInput& step,
                        const MachineRates* rates) {
  const int64_t grad_accum = step.grad_accum;
  const MemoryPlan m = plan_memory(c, in);
  const int64_t n = parameter_count(c);
  std::string out;
  out += fmt::format("parameters            {:L} ({:.3f} B)\n", n, n / 1e9);
  out += fmt::format("  without input embed {:L}\n", n - embedding_parameter_count(c));
  out += fmt::format("model FLOPs / token   {:.4e}  (6*N + 12*L*h*s, N without the input embedding; s = {})\n",
                     flops_per_token(c, in.seq_len), in.seq_len);
  out += fmt::format("layout                world {} = tp {} x dp {}; micro-batch {}, accumulation {}, global batch {}\n",
                     in.tp * in.dp, in.tp, in.dp, in.micro_batch, grad_accum, in.micro_batch * grad_accum * in.dp);
  out += fmt::format("per rank              {} params ({}, ZeRO-1 {})\n", m.local_params,
                     in.bf16 ? "bf16 params + fp32 master" : "fp32", in.zero_1 ? "on" : "off");
  out += fmt::format("  weights             {}\n", format_bytes(m.weight_bytes));
  if (in.packed_weights)
    out += fmt::format("  packed weights      {}  (--pack_weights; forward and data gradient, at most)\n",
                       format_bytes(m.packed_bytes));
  out += fmt::format("  gradients           {}  ({}, accumulated and DP-reduced in it)\n", format_bytes(m.grad_bytes),
                     in.grad_bytes_per_param() == 4 ? (in.bf16 ? "fp32 main gradients" : "fp32") : "bf16");
  out += fmt::format("  optimizer state     {}  ({} bytes/param / {})\n", format_bytes(m.optimizer_bytes),
                     in.bf16 ? 12 : 8, in.zero_1 ? fmt::format("dp {}", in.dp) : std::string("1 (not sharded)"));
  out += fmt::format("  reduction buffers   {}\n", format_bytes(m.reduce_bytes));
  out += fmt::format("  activations         {}  (per micro-batch; SP {}; attention keeps no probabilities)\n",
                     format_bytes(m.activation_bytes), c.sequence_parallel_enabled ? "on" : "off");
  out += fmt::format("  loss                {}  (chunked logits, dw, dx)\n", format_bytes(m.loss_bytes));
  out += fmt::format("  runtime             {}  (libtorch, oneDNN, Open MPI)\n", format_bytes(m.runtime_bytes));
  if (in.async_save)
    out += fmt::format("  checkpoint copy     {}  (--async_save: a save's snapshot while it is written)\n",
                       format_bytes(m.snapshot_bytes));
  out += fmt::format("  total (peak RSS)    {}\n", format_bytes(m.total()));
  if (rates == nullptr) return out;
  const StepEstimate e = estimate_step(c, in, step, *rates);
  const double tokens = static_cast<double>(in.micro_batch * grad_accum * in.dp * in.seq_len);
  const double peak_flops = rates->peak_flops;
  const double mfu = flops_per_token(c, in.seq_len) * tokens / (e.total() * peak_flops * in.tp * in.dp);
  out += fmt::format("rates per rank        {} GEMM {:.1f} GFLOP/s, attention {:.1f} GFLOP/s, memory {:.1f} GB/s, "
                     "intra-node {:.1f} GB/s, network {:.1f} GB/s per node\n",
                     in.bf16 ? "bf16" : "fp32", rates->gemm_flops / 1e9, rates->attention_flops / 1e9, rates->memory_bytes_per_s / 1e9,
                     rates->intra_node_bytes_per_s / 1e9, rates->network_bytes_per_s / 1e9);
  out += fmt::format("step time estimate    {:.3f} s  ({:.0f} tokens/s, MFU {:.1f}% of {:.1f} GFLOP/s per rank)\n",
                     e.total(), tokens / e.total(), 100 * mfu, peak_flops / 1e9);
  const std::pair<const char*, double> parts[] = {{"gemm", e.gemm}, {"attention", e.attention}, {"loss", e.loss},
      {"elementwise", e.elementwise}, {"communication", e.communication}, {"grad_reduce", e.grad_reduce},
      {"optimizer", e.optimizer}};
  for (const auto& [name, seconds] : parts)
    out += fmt::format("  {:<19} {:.3f} s  {:4.1f}%\n", name, seconds, 100 * seconds / e.total());
  return out;
}

}  // namespace llama2
