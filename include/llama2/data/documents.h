// Owns the text inputs of prepare-data and train-tokenizer: .txt files (one document each), .jsonl files (one
// document per line, field "text", as Hugging Face datasets exports them) and directories of both, checked as UTF-8.
#pragma once
#include <string>
#include <vector>

namespace llama2 {

struct Document {
  std::string text;
};

// Files and directories → the .txt and .jsonl files (a directory's sorted by name). BadInput naming the input that
// is missing or of another type.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs);

// A file's non-empty documents. BadInput naming the file (and JSONL line, or byte offset of invalid UTF-8).
std::vector<Document> read_documents(const std::string& path);

// Byte offset of the first invalid UTF-8 sequence in `text`, or npos.
size_t invalid_utf8_offset(const std::string& text);

}  // namespace llama2
