// Owns the model hyper-parameters read from a Hugging Face LlamaConfig config.json, and their validation.
// Does not own training flags (train_options.h) or anything about ranks (layout.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace llama2 {

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;        // h
  int64_t intermediate_size = 0;  // I
  int64_t num_hidden_layers = 0;  // L
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // == heads unless GQA
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  double initializer_range = 0.02;
  bool tie_word_embeddings = false;
  // The recipe's two extra keys; command-line flags override them.
  bool sequence_parallel_enabled = false;
  bool selective_checkpoint_enabled = false;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  // Vocabulary rows padded up to a multiple of the TP degree (Megatron's padding; the loss masks the padding).
  int64_t padded_vocab_size(int64_t tp) const { return (vocab_size + tp - 1) / tp * tp; }
};

// Parses and validates `path`. Throws BadInput naming the file, key, value and what would be valid.
// Unknown keys produce one warning listing them.
ModelConfig load_model_config(const std::string& path);

// Parses config.json text (e.g. stored in a checkpoint); `origin` names its source in messages.
ModelConfig model_config_from_json(const std::string& text, const std::string& origin);

// Keys of the model hyper-parameters whose values differ between two configs (empty: same model).
std::vector<std::string> config_differences(const ModelConfig& a, const ModelConfig& b);

// Validates an in-memory config (the same checks load_model_config applies); `origin` names its source.
void validate_model_config(const ModelConfig& config, const std::string& origin);

// JSON text of the config with Hugging Face's keys (for checkpoints and export).
std::string model_config_to_json(const ModelConfig& config);

}  // namespace llama2
