// Owns text ↔ token ids with a sentencepiece model (Llama-2's tokenizer.model), through our shim
// library loaded into its own link namespace. Thread-safe for concurrent encode() calls.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llama2 {

// A piece's type, numbered as in sentencepiece's model file (and in llama.cpp's GGUF token types). The processor
// reports user-defined pieces as normal.
enum class PieceType : int { normal = 1, unknown = 2, control = 3, unused = 5, byte = 6 };

class Tokenizer {
 public:
  // Throws BadInput naming the file when it cannot be loaded.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int> encode(std::string_view text) const;  // no BOS/EOS added
  std::string decode(const std::vector<int>& ids) const;  // control ids (BOS, EOS) decode to nothing
  int vocab_size() const;
  int bos_id() const;
  int eos_id() const;
  int unk_id() const;
  std::string piece(int id) const;  // "<s>", "▁the", ...
  float score(int id) const;         // sentencepiece's score of the piece
  PieceType type(int id) const;

 struct Library;  // the loaded shim's entry points (opaque)

 private:
  std::shared_ptr<const Library> lib_;
  void* handle_ = nullptr;
};

// Runs sentencepiece's trainer (in the shim's namespace) with its command-line flags; BadInput with its message when
// it refuses them (a vocabulary too small for the characters, say).
void train_sentencepiece(const std::string& flags);

// The files a Hugging Face LlamaTokenizer and generate() read, into an exported model directory: tokenizer.model
// (a copy), tokenizer_config.json, special_tokens_map.json (the model's BOS/EOS/UNK pieces) and
// generation_config.json (their ids; Meta's sampling defaults, temperature 0.6, top_p 0.9).
// `t` is loaded from `tokenizer_path`.
void write_hf_tokenizer_files(const Tokenizer& t, const std::string& tokenizer_path, const std::string& dir,
                              int64_t max_positions);

// BOS + `text` encoded: a document or prompt as the model reads it. BadInput naming `tokenizer_path` when an id is
// not below the model's vocab_size (a tokenizer of another model).
std::vector<int> encode_for_model(const Tokenizer& tokenizer, std::string_view text, const std::string& tokenizer_path,
                                  int64_t vocab_size);

}  // namespace llama2
