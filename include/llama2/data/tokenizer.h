// Owns text → token ids with a sentencepiece model (Llama-2's tokenizer.model), through our shim
// library loaded into its own link namespace. Thread-safe for concurrent encode() calls.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llama2 {

class Tokenizer {
 public:
  // Throws BadInput naming the file when it cannot be loaded.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int> encode(std::string_view text) const;  // no BOS/EOS added
  int vocab_size() const;
  int bos_id() const;
  int eos_id() const;

 struct Library;  // the loaded shim's entry points (opaque)

 private:
  std::shared_ptr<const Library> lib_;
  void* handle_ = nullptr;
};

}  // namespace llama2
