// Hugging Face LlamaConfig config.json → ModelConfig, with one clear message per bad key.
#include "llama2/config/config.h"

#include <cmath>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"

namespace llama2 {
namespace {

using nlohmann::json;

// Keys a HF Llama config may carry that do not change training; accepted without a warning.
const std::set<std::string> kQuietKeys = {
    "architectures", "model_type", "torch_dtype", "use_cache", "transformers_version",
    "bos_token_id", "eos_token_id", "pad_token_id", "_name_or_path", "attention_dropout",
    "mlp_bias"};

// Upper bounds that keep every derived product inside int64 (and far beyond any real Llama).
constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxWidth = int64_t{1} << 18;
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxPositions = int64_t{1} << 24;

[[noreturn]] void fail(const std::string& origin, const std::string& key, const std::string& value,
                       const std::string& valid) {
  throw BadInput(origin + ": key '" + key + "' = " + value + " is invalid; expected " + valid);
}

int64_t read_int(const json& j, const std::string& origin, const std::string& key, int64_t max,
                 bool required, int64_t fallback) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) throw BadInput(origin + ": required key '" + key + "' is missing; expected a positive integer");
    return fallback;
  }
  const json& v = j[key];
  const std::string valid = "an integer in [1, " + std::to_string(max) + "]";
  if (!v.is_number_integer()) fail(origin, key, v.dump(), valid);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(max)) fail(origin, key, v.dump(), valid);
  const int64_t x = v.get<int64_t>();
  if (x < 1 || x > max) fail(origin, key, v.dump(), valid);
  return x;
}

double read_positive_float(const json& j, const std::string& origin, const std::string& key, double fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const json& v = j[key];
  if (!v.is_number()) fail(origin, key, v.dump(), "a finite positive number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x <= 0) fail(origin, key, v.dump(), "a finite positive number");
  return x;
}

bool read_bool(const json& j, const std::string& origin, const std::string& key, bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) fail(origin, key, j[key].dump(), "true or false");
  return j[key].get<bool>();
}

// Keys whose only supported value is fixed; anything else would silently change the model.
void require_value(const json& j, const std::string& origin, const std::string& key, const json& supported,
                   const std::string& valid) {
  if (j.contains(key) && j[key] != supported) fail(origin, key, j[key].dump(), valid);
}

void warn_unknown_keys(const json& j, const std::string& origin) {
  static const std::set<std::string> known = {
      "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
      "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "initializer_range",
      "tie_word_embeddings", "sequence_parallel_enabled", "selective_checkpoint_enabled", "hidden_act",
      "rope_scaling", "pretraining_tp", "attention_bias"};
  std::vector<std::string> unknown;
  for (const auto& item : j.items())
    if (!known.count(item.key()) && !kQuietKeys.count(item.key())) unknown.push_back(item.key());
  if (unknown.empty()) return;
  std::string list;
  for (const auto& k : unknown) list += (list.empty() ? "" : ", ") + k;
  spdlog::warn("{}: ignoring unknown config keys: {}", origin, list);
}

json parse_text(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw BadInput(origin + ": malformed JSON at byte " + std::to_string(e.byte) + "; expected a JSON object (" +
                   e.what() + ")");
  } catch (const json::exception& e) {  // e.g. a number beyond double's range
    throw BadInput(origin + ": invalid JSON (" + e.what() + "); expected finite numbers");
  }
  if (!j.is_object()) throw BadInput(origin + ": top level is " + std::string(j.type_name()) + "; expected a JSON object");
  return j;
}

ModelConfig parse_config(const json& j, const std::string& path) {
  ModelConfig c;
  c.vocab_size = read_int(j, path, "vocab_size", kMaxVocab, true, 0);
  c.hidden_size = read_int(j, path, "hidden_size", kMaxWidth, true, 0);
  c.intermediate_size = read_int(j, path, "intermediate_size", kMaxWidth * 4, true, 0);
  c.num_hidden_layers = read_int(j, path, "num_hidden_layers", kMaxLayers, true, 0);
  c.num_attention_heads = read_int(j, path, "num_attention_heads", kMaxWidth, true, 0);
  c.num_key_value_heads = read_int(j, path, "num_key_value_heads", kMaxWidth, false, c.num_attention_heads);
  c.max_position_embeddings = read_int(j, path, "max_position_embeddings", kMaxPositions, false, 2048);
  c.rms_norm_eps = read_positive_float(j, path, "rms_norm_eps", 1e-6);
  c.rope_theta = read_positive_float(j, path, "rope_theta", 10000.0);
  c.initializer_range = read_positive_float(j, path, "initializer_range", 0.02);
  c.tie_word_embeddings = read_bool(j, path, "tie_word_embeddings", false);
  c.sequence_parallel_enabled = read_bool(j, path, "sequence_parallel_enabled", false);
  c.selective_checkpoint_enabled = read_bool(j, path, "selective_checkpoint_enabled", false);
  require_value(j, path, "hidden_act", "silu", "\"silu\" (Llama's SwiGLU)");
  require_value(j, path, "rope_scaling", nullptr, "null (rope scaling is not supported)");
  require_value(j, path, "pretraining_tp", 1, "1 (tensor parallelism is set with --tensor_parallel_size)");
  require_value(j, path, "attention_bias", false, "false (Llama-2 projections have no bias)");
  validate_model_config(c, path);
  warn_unknown_keys(j, path);
  return c;
}

}  // namespace

void validate_model_config(const ModelConfig& c, const std::string& origin) {
  if (c.hidden_size % c.num_attention_heads != 0)
    fail(origin, "hidden_size", std::to_string(c.hidden_size),
         "a multiple of num_attention_heads (" + std::to_string(c.num_attention_heads) + ")");
  if (c.num_key_value_heads > c.num_attention_heads || c.num_attention_heads % c.num_key_value_heads != 0)
    fail(origin, "num_key_value_heads", std::to_string(c.num_key_value_heads),
         "a divisor of num_attention_heads (" + std::to_string(c.num_attention_heads) + ")");
  if (c.head_dim() % 2 != 0)
    fail(origin, "hidden_size", std::to_string(c.hidden_size),
         "hidden_size / num_attention_heads even (rotary embedding pairs dimensions)");
}

ModelConfig load_model_config(const std::string& path) {
  return parse_config(parse_text(read_file(path, "", "a readable Hugging Face config.json"), path), path);
}

ModelConfig model_config_from_json(const std::string& text, const std::string& origin) {
  return parse_config(parse_text(text, origin), origin);
}

std::vector<std::string> config_differences(const ModelConfig& a, const ModelConfig& b) {
  std::vector<std::string> keys;
  const auto check = [&](const char* key, bool same) {
    if (!same) keys.push_back(key);
  };
  check("vocab_size", a.vocab_size == b.vocab_size);
  check("hidden_size", a.hidden_size == b.hidden_size);
  check("intermediate_size", a.intermediate_size == b.intermediate_size);
  check("num_hidden_layers", a.num_hidden_layers == b.num_hidden_layers);
  check("num_attention_heads", a.num_attention_heads == b.num_attention_heads);
  check("num_key_value_heads", a.num_key_value_heads == b.num_key_value_heads);
  check("rms_norm_eps", a.rms_norm_eps == b.rms_norm_eps);
  check("rope_theta", a.rope_theta == b.rope_theta);
  check("tie_word_embeddings", a.tie_word_embeddings == b.tie_word_embeddings);
  return keys;
}

std::string model_config_to_json(const ModelConfig& c) {
  json j = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"hidden_act", "silu"},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"intermediate_size", c.intermediate_size},
            {"num_hidden_layers", c.num_hidden_layers},
            {"num_attention_heads", c.num_attention_heads},
            {"num_key_value_heads", c.num_key_value_heads},
            {"max_position_embeddings", c.max_position_embeddings},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_theta", c.rope_theta},
            {"rope_scaling", nullptr},
            {"initializer_range", c.initializer_range},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"pretraining_tp", 1},
            {"sequence_parallel_enabled", c.sequence_parallel_enabled},
            {"selective_checkpoint_enabled", c.selective_checkpoint_enabled}};
  return j.dump(2);
}

}  // namespace llama2
