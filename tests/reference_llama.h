// An independent, unfused, single-process Llama-2 written the way Hugging Face's modeling_llama reads:
// separate q/k/v and gate/up weights, repeat_kv for GQA, a causal mask built per call, libtorch matmuls.
// Used only as the reference the product's model is compared with.
#pragma once
#include <cmath>
#include <map>
#include <string>

#include <ATen/ATen.h>

#include "llama2/config/config.h"

namespace llama2::testing {

using Weights = std::map<std::string, at::Tensor>;  // HF names, HF (unfused) shapes

inline at::Tensor ref_rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  return w * (x * at::rsqrt(x.pow(2).mean(-1, true) + eps));
}

inline at::Tensor ref_rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// x [b, n, s, d]; position p, pair i: angle p / theta^(2i/d), computed in double here.
inline at::Tensor ref_rotary(const at::Tensor& x, double theta) {
  const int64_t s = x.size(2), d = x.size(3);
  at::Tensor angle = at::empty({s, d}, at::kDouble);
  for (int64_t p = 0; p < s; ++p)
    for (int64_t i = 0; i < d; ++i) angle[p][i] = p / std::pow(theta, 2.0 * (i % (d / 2)) / d);
  const at::Tensor cos = angle.cos().to(x.scalar_type()), sin = angle.sin().to(x.scalar_type());
  return x * cos + ref_rotate_half(x) * sin;
}

// tokens [b, s] → logits [b, s, vocab]
inline at::Tensor reference_logits(const ModelConfig& c, const Weights& w, const at::Tensor& tokens) {
  const int64_t b = tokens.size(0), s = tokens.size(1), h = c.hidden_size, d = c.head_dim();
  const int64_t nq = c.num_attention_heads, nkv = c.num_key_value_heads;
  at::Tensor x = w.at("model.embed_tokens.weight").index_select(0, tokens.reshape({-1})).view({b, s, h});
  const at::Tensor mask =
      at::where(at::arange(s).unsqueeze(1) >= at::arange(s).unsqueeze(0), at::zeros({}, x.options()),
                at::full({}, -1e9, x.options()));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const auto proj = [&](const at::Tensor& in, const std::string& name) { return at::matmul(in, w.at(p + name).t()); };
    at::Tensor hn = ref_rms_norm(x, w.at(p + "input_layernorm.weight"), c.rms_norm_eps);
    at::Tensor q = proj(hn, "self_attn.q_proj.weight").view({b, s, nq, d}).transpose(1, 2);
    at::Tensor k = proj(hn, "self_attn.k_proj.weight").view({b, s, nkv, d}).transpose(1, 2);
    at::Tensor v = proj(hn, "self_attn.v_proj.weight").view({b, s, nkv, d}).transpose(1, 2);
    q = ref_rotary(q, c.rope_theta);
    k = ref_rotary(k, c.rope_theta).repeat_interleave(nq / nkv, 1);
    v = v.repeat_interleave(nq / nkv, 1);
    const at::Tensor probs = at::softmax(at::matmul(q, k.transpose(2, 3)) / std::sqrt(double(d)) + mask, -1);
    const at::Tensor attn = at::matmul(probs, v).transpose(1, 2).reshape({b, s, nq * d});
    x = x + proj(attn, "self_attn.o_proj.weight");
    hn = ref_rms_norm(x, w.at(p + "post_attention_layernorm.weight"), c.rms_norm_eps);
    x = x + proj(at::silu(proj(hn, "mlp.gate_proj.weight")) * proj(hn, "mlp.up_proj.weight"), "mlp.down_proj.weight");
  }
  x = ref_rms_norm(x, w.at("model.norm.weight"), c.rms_norm_eps);
  const std::string head = c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  return at::matmul(x, w.at(head).t());
}

}  // namespace llama2::testing
