// Owns export-gguf: a trained Llama (any checkpoint layout, or an HF directory) as a GGUF file llama.cpp runs, with
// llama.cpp's tensor names and metadata keys, q and k rows in its rotary layout, and the sentencepiece vocabulary.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

namespace llama2 {

struct GgufExportOptions {
  std::string checkpoint, model_path;  // exactly one
  std::string tokenizer;               // default: the model directory's tokenizer.model
  std::string output;
  std::string dtype = "f16";  // f32, f16, bf16 or q8_0 for the matrices; norms stay f32
  bool force = false;         // overwrite an existing --output
};

struct GgufExport {
  int64_t bytes = 0;
  int64_t tensors = 0;
};

// Writes the file; BadInput for an existing output without `force`, or a tokenizer whose size is not the model's
// vocab_size, before anything is written.
GgufExport export_gguf(const GgufExportOptions& options);

// HF's q/k rows of each head (first half, second half: rotate_half's pairs) → llama.cpp's (pairs adjacent):
// row 2i takes HF row i, row 2i+1 HF row i + head_dim/2. `w`: [heads × head_dim, in].
at::Tensor rotary_rows_for_llama_cpp(const at::Tensor& w, int64_t heads);

}  // namespace llama2
