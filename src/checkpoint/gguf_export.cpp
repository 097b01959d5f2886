// A Llama as llama.cpp's GGUF: HF names → llama.cpp's (token_embd, blk.N.attn_q, ...), q/k rows permuted to its
// rotary layout, the hyper-parameters under llama.*, the sentencepiece vocabulary under tokenizer.ggml.*.
#include "llama2/checkpoint/gguf_export.h"

#include <filesystem>
#include <regex>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "llama2/checkpoint/gguf.h"
#include "llama2/checkpoint/model_source.h"
#include "llama2/data/tokenizer.h"
#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"

namespace llama2 {
namespace {

// llama.cpp's name for an HF tensor name.
std::string gguf_name(const std::string& hf) {
  static const std::vector<std::pair<std::string, std::string>> whole = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"}};
  for (const auto& [from, to] : whole)
    if (hf == from) return to;
  static const std::regex layer(R"(model\.layers\.(\d+)\.(.+)\.weight)");
  static const std::vector<std::pair<std::string, std::string>> in_layer = {
      {"input_layernorm", "attn_norm"},       {"self_attn.q_proj", "attn_q"},   {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},         {"self_attn.o_proj", "attn_output"},
      {"post_attention_layernorm", "ffn_norm"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  std::smatch m;
  if (std::regex_match(hf, m, layer))
    for (const auto& [from, to] : in_layer)
      if (m[2] == from) return fmt::format("blk.{}.{}.weight", m[1].str(), to);
  throw RuntimeFailure("export-gguf: no llama.cpp name for tensor " + hf);
}

GgmlType parse_dtype(const std::string& dtype) {
  if (dtype == "f32") return GgmlType::f32;
  if (dtype == "f16") return GgmlType::f16;
  if (dtype == "bf16") return GgmlType::bf16;
  if (dtype == "q8_0") return GgmlType::q8_0;
  throw BadInput("--dtype = " + dtype + ": unsupported; expected one of f32, f16, bf16, q8_0");
}

// llama.cpp's general.file_type (llama_ftype) for the matrices' type.
uint32_t file_type(GgmlType t) {
  switch (t) {
    case GgmlType::f32: return 0;
    case GgmlType::f16: return 1;
    case GgmlType::q8_0: return 7;
    case GgmlType::bf16: return 32;
  }
  return 0;
}

// Norm vectors stay f32, as llama.cpp's converter keeps them; a matrix whose rows are not whole q8_0 blocks is f16.
GgmlType tensor_type(const std::vector<int64_t>& shape, GgmlType matrices) {
  if (shape.size() < 2) return GgmlType::f32;
  if (matrices == GgmlType::q8_0 && shape.back() % kQ8Block != 0) return GgmlType::f16;
  return matrices;
}

void add_hyper_parameters(GgufWriter& w, const ModelConfig& c, GgmlType matrices) {
  const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  w.add_metadata("general.architecture", std::string("llama"));
  w.add_metadata("general.name", std::string("llama2_pretrain"));
  w.add_metadata("general.file_type", file_type(matrices));
  w.add_metadata("llama.vocab_size", u32(c.vocab_size));
  w.add_metadata("llama.context_length", u32(c.max_position_embeddings));
  w.add_metadata("llama.embedding_length", u32(c.hidden_size));
  w.add_metadata("llama.block_count", u32(c.num_hidden_layers));
  w.add_metadata("llama.feed_forward_length", u32(c.intermediate_size));
  w.add_metadata("llama.attention.head_count", u32(c.num_attention_heads));
  w.add_metadata("llama.attention.head_count_kv", u32(c.num_key_value_heads));
  w.add_metadata("llama.rope.dimension_count", u32(c.head_dim()));
  w.add_metadata("llama.rope.freq_base", static_cast<float>(c.rope_theta));
  w.add_metadata("llama.attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
}

void add_vocabulary(GgufWriter& w, const Tokenizer& t) {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int id = 0; id < t.vocab_size(); ++id) {
    pieces.push_back(t.piece(id));
    scores.push_back(t.score(id));
    types.push_back(static_cast<int32_t>(t.type(id)));
  }
  w.add_metadata("tokenizer.ggml.model", std::string("llama"));
  w.add_metadata("tokenizer.ggml.tokens", std::move(pieces));
  w.add_metadata("tokenizer.ggml.scores", std::move(scores));
  w.add_metadata("tokenizer.ggml.token_type", std::move(types));
  w.add_metadata("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(t.bos_id()));
  w.add_metadata("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(t.eos_id()));
  w.add_metadata("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(t.unk_id()));
  w.add_metadata("tokenizer.ggml.add_bos_token", true);
  w.add_metadata("tokenizer.ggml.add_eos_token", false);
}

}  // namespace

at::Tensor rotary_rows_for_llama_cpp(const at::Tensor& w, int64_t heads) {
  const int64_t d = w.size(0) / heads;
  return w.reshape({heads, 2, d / 2, w.size(1)}).transpose(1, 2).reshape(w.sizes());
}

GgufExport export_gguf(const GgufExportOptions& o) {
  const GgmlType matrices = parse_dtype(o.dtype);
  if (std::filesystem::exists(o.output) && !o.force)
    throw BadInput("--output = " + o.output + ": exists; expected a new file (or --force to overwrite it)");
  const ModelSource source(o.model_path, o.checkpoint);
  const ModelConfig& c = source.config();
  const std::string tokenizer_path = source.tokenizer_path(o.tokenizer);
  const Tokenizer tokenizer(tokenizer_path);
  if (tokenizer.vocab_size() != c.vocab_size)
    throw BadInput(fmt::format("--tokenizer = {} has {} pieces but the model's vocab_size is {}; expected the "
                               "tokenizer the model was trained with (llama.cpp needs one piece per embedding row)",
                               tokenizer_path, tokenizer.vocab_size(), c.vocab_size));
  if (auto parent = std::filesystem::path(o.output).parent_path(); !parent.empty())
    ensure_directory(parent.string(), "--output");

  GgufWriter writer(o.output);
  add_hyper_parameters(writer, c, matrices);
  add_vocabulary(writer, tokenizer);
  const std::vector<HfTensor> tensors = hf_tensors(c);
  for (const HfTensor& t : tensors) writer.add_tensor(gguf_name(t.name), t.shape, tensor_type(t.shape, matrices));
  source.read_tensors([&](const HfTensor& t, const at::Tensor& value) {
    if (t.name.find("q_proj") != std::string::npos)
      writer.write_tensor(rotary_rows_for_llama_cpp(value, c.num_attention_heads));
    else if (t.name.find("k_proj") != std::string::npos)
      writer.write_tensor(rotary_rows_for_llama_cpp(value, c.num_key_value_heads));
    else
      writer.write_tensor(value);
  });
  return {writer.finish(), static_cast<int64_t>(tensors.size())};
}

}  // namespace llama2
