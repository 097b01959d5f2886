// train-tokenizer: the documents' lines into one file (sentencepiece trains on lines), then its trainer.
#include "llama2/data/tokenizer_training.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string_view>

#include <fmt/format.h>

#include "llama2/data/documents.h"
#include "llama2/data/tokenizer.h"
#include "llama2/dist/layout.h"
#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"

namespace llama2 {
namespace fs = std::filesystem;

namespace {

// The trainer's longest sentence in bytes (Llama-2's max_sentence_length): longer lines are cut at whitespace.
constexpr size_t kMaxSentenceBytes = 4192;

// Writes `line` as sentences of at most kMaxSentenceBytes, cut at a space (pieces never span one, so no merge is
// lost); returns how many.
int64_t write_sentences(std::ofstream& out, std::string_view line) {
  int64_t written = 0;
  while (!line.empty()) {
    size_t cut = line.size();
    if (cut > kMaxSentenceBytes) {
      cut = line.rfind(' ', kMaxSentenceBytes);
      if (cut == std::string_view::npos || cut == 0) cut = kMaxSentenceBytes;  // no space: a hard cut
    }
    out.write(line.data(), static_cast<std::streamsize>(cut)) << '\n';
    ++written;
    line.remove_prefix(std::min(cut + (cut < line.size() && line[cut] == ' ' ? 1 : 0), line.size()));
  }
  return written;
}

// Llama-2's trainer settings, as its tokenizer.model's trainer_spec records them.
std::string llama2_flags(const TokenizerTrainingOptions& o, const std::string& lines, const std::string& prefix,
                         int threads) {
  return fmt::format(
      "--input={} --model_prefix={} --vocab_size={} --model_type=bpe --byte_fallback=true --split_digits=true "
      "--normalization_rule_name=identity --add_dummy_prefix=true --remove_extra_whitespaces=false "
      "--allow_whitespace_only_pieces=true --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --character_coverage=0.99995 "
      "--max_sentence_length={} --input_sentence_size={} --shuffle_input_sentence=true --num_threads={} "
      "--minloglevel=1",
      lines, prefix, o.vocab_size, kMaxSentenceBytes, o.input_sentence_size, threads);
}

}  // namespace

TokenizerTrainingSummary train_tokenizer(const TokenizerTrainingOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const std::string suffix = ".model";
  if (o.output.size() <= suffix.size() || o.output.compare(o.output.size() - suffix.size(), suffix.size(), suffix) != 0)
    throw BadInput(fmt::format("--output = {}: expected a path ending in .model (sentencepiece writes <name>.model "
                               "and <name>.vocab)",
                               o.output));
  if (o.vocab_size < 300 || o.vocab_size > 1000000)
    throw BadInput(fmt::format("--vocab_size = {}: expected 300..1000000 (byte fallback alone takes 259 ids)",
                               o.vocab_size));
  const std::vector<std::string> files = expand_inputs(o.inputs);
  if (files.empty()) throw BadInput("--input: no .txt or .jsonl files found; expected at least one document");
  const fs::path output(o.output);
  if (output.has_parent_path()) ensure_directory(output.parent_path().string(), "--output");
  // sentencepiece trains on lines: every document's non-empty lines (long ones cut), in a temporary file beside the
  // output.
  const std::string lines_path = fmt::format("{}.{}.lines.tmp", o.output, getpid());
  TokenizerTrainingSummary summary;
  {
    std::ofstream lines(lines_path, std::ios::binary);
    if (!lines) throw BadInput(fmt::format("--output = {}: cannot write {} beside it", o.output, lines_path));
    for (const InputPiece& piece : input_pieces(files, std::numeric_limits<int64_t>::max()))
      for (const Document& doc : read_documents(piece)) {
        ++summary.documents;
        size_t begin = 0;
        while (begin < doc.text.size()) {
          const size_t end = std::min(doc.text.find('\n', begin), doc.text.size());
          if (doc.text.find_first_not_of(" \t\r", begin) < end)
            summary.lines += write_sentences(lines, std::string_view(doc.text).substr(begin, end - begin));
          begin = end + 1;
        }
      }
    if (!lines.flush()) throw RuntimeFailure(fmt::format("cannot write {}", lines_path));
  }
  const int threads = default_threads(o.threads, 1);
  try {
    train_sentencepiece(
        llama2_flags(o, lines_path, o.output.substr(0, o.output.size() - suffix.size()), threads));
  } catch (...) {
    fs::remove(lines_path);
    throw;
  }
  fs::remove(lines_path);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace llama2
