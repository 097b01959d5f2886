// Parameter, FLOP and memory arithmetic for `plan` and the start-up summary.
#include "llama2/plan.h"

#include <fmt/format.h>

namespace llama2 {
namespace {

int64_t per_layer_params(const ModelConfig& c) {
  const int64_t h = c.hidden_size, d = c.head_dim();
  const int64_t qkv = (c.num_attention_heads + 2 * c.num_key_value_heads) * d * h;
  const int64_t o = c.num_attention_heads * d * h;
  const int64_t mlp = 3 * c.intermediate_size * h;
  return qkv + o + mlp + 2 * h;
}

int64_t padded_vocab(const ModelConfig& c, int64_t tp) { return (c.vocab_size + tp - 1) / tp * tp; }

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

MemoryPlan plan_memory(const ModelConfig& c, const MemoryPlanInput& in) {
  const int64_t t = in.tp, h = c.hidden_size, vocab = padded_vocab(c, t);
  const int64_t norms = (2 * c.num_hidden_layers + 1) * h;
  const int64_t sharded = parameter_count(c) - norms + (vocab - c.vocab_size) * h * (c.tie_word_embeddings ? 1 : 2);
  MemoryPlan m;
  m.local_params = sharded / t + norms;
  const int64_t elem = in.bf16 ? 2 : 4;
  m.weight_bytes = m.local_params * elem;
  m.grad_bytes = m.local_params * elem;
  const int64_t ranks = in.zero_1 ? in.dp : 1;
  const int64_t shard = (m.local_params + ranks - 1) / ranks;
  m.optimizer_bytes = shard * 4 * (in.bf16 ? 3 : 2);
  // Activations kept for backward (Korthikanti et al. 2022, per layer s·b·h·(34 + 5·a·s/h)/t bytes in
  // 16-bit; the 5·a·s/h attention term vanishes with selective recompute, and /t applies to all of it
  // with SP), scaled to the element size, plus the fp32 logits and softmax of the loss.
  const double sbh = static_cast<double>(in.seq_len) * in.micro_batch * h;
  const double attn = c.selective_checkpoint_enabled ? 0.0 : 5.0 * c.num_attention_heads * in.seq_len / h;
  const double per_layer = c.sequence_parallel_enabled ? sbh * (34.0 + attn) / t : sbh * (10.0 + (24.0 + attn) / t);
  const double logits = 2.0 * in.seq_len * in.micro_batch * (vocab / t) * 4;
  m.activation_bytes = static_cast<int64_t>(per_layer * c.num_hidden_layers * elem / 2.0 + logits);
  return m;
}

std::vector<GemmShape> model_gemm_shapes(const ModelConfig& c, int64_t tokens, int64_t tp) {
  const int64_t h = c.hidden_size, d = c.head_dim();
  return {{"qkv_proj", tokens, h, (c.num_attention_heads + 2 * c.num_key_value_heads) * d / tp},
          {"o_proj", tokens, c.num_attention_heads * d / tp, h},
          {"gate_up_proj", tokens, h, 2 * c.intermediate_size / tp},
          {"down_proj", tokens, c.intermediate_size / tp, h},
          {"lm_head", tokens, h, padded_vocab(c, tp) / tp}};
}

std::string format_bytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
  return fmt::format("{:.1f} MiB", b / (1024.0 * 1024));
}

std::string format_plan(const ModelConfig& c, const MemoryPlanInput& in, int64_t grad_accum) {
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
  out += fmt::format("  gradients           {}\n", format_bytes(m.grad_bytes));
  out += fmt::format("  optimizer state     {}  ({} bytes/param / {})\n", format_bytes(m.optimizer_bytes),
                     in.bf16 ? 12 : 8, in.zero_1 ? fmt::format("dp {}", in.dp) : std::string("1 (not sharded)"));
  out += fmt::format("  activations         {}  (per micro-batch; SP {}, selective checkpoint {})\n",
                     format_bytes(m.activation_bytes), c.sequence_parallel_enabled ? "on" : "off",
                     c.selective_checkpoint_enabled ? "on" : "off");
  out += fmt::format("  total               {}\n", format_bytes(m.total()));
  return out;
}

}  // namespace llama2
