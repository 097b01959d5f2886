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

// A unit of work: a .txt file whole, or bytes [begin, end) of a .jsonl file, from a line's start to just after a
// newline (or the file's end).
struct InputPiece {
  std::string file;
  int64_t begin = 0, end = 0;
};

// The files as pieces in input order: a .txt one piece, a .jsonl cut after the first newline past every multiple of
// `piece_bytes`, so that ranks can share one large file.
std::vector<InputPiece> input_pieces(const std::vector<std::string>& files, int64_t piece_bytes);

// A piece's non-empty documents. BadInput naming the file (and JSONL line, or byte offset of invalid UTF-8).
std::vector<Document> read_documents(const InputPiece& piece);

// Byte offset of the first invalid UTF-8 sequence in `text`, or npos.
size_t invalid_utf8_offset(const std::string& text);

}  // namespace llama2
