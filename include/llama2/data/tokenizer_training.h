// Owns `train-tokenizer`: a sentencepiece BPE model trained on the run's own corpus with Llama-2's settings (byte
// fallback, digits split, no normalisation, unk 0 / bos 1 / eos 2), from the inputs prepare-data reads.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace llama2 {

struct TokenizerTrainingOptions {
  std::vector<std::string> inputs;      // .txt, .jsonl files or directories of them
  int64_t vocab_size = 32000;
  std::string output;                   // the model file, "<name>.model" (sentencepiece writes <name>.vocab beside it)
  int64_t input_sentence_size = 2000000;  // lines the trainer samples from the corpus (0: all)
  int threads = 0;                      // 0: all cores
};

struct TokenizerTrainingSummary {
  int64_t documents = 0, lines = 0;
  double seconds = 0;
};

// BadInput naming the flag for bad inputs, an output that is not a .model path, or a vocabulary the trainer refuses.
TokenizerTrainingSummary train_tokenizer(const TokenizerTrainingOptions& options);

}  // namespace llama2
