// Owns the choice of data for a run: the synthetic stream, or a prepared corpus checked against the
// model's vocabulary, the tokenizer it was made with, and the global batch.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "llama2/config/config.h"
#include "llama2/config/train_options.h"
#include "llama2/data/samples.h"

namespace llama2 {

struct DataSources {
  std::unique_ptr<SampleSource> train, validation;  // validation: null unless --eval_interval > 0
  int64_t validation_offset = 0;                    // global index of the first validation sample
  std::string corpus = "synthetic";  // which data: sha256 of the corpus's index.json
  std::string tokenizer;             // sha256 of the tokenizer the corpus was prepared with ("" for synthetic data)
};

// --synthetic_data (validation: synthetic samples from 2^40 on) or --data_dir. Throws BadInput for a
// missing/bad corpus, a tokenizer other than --tokenizer, ids beyond vocab_size, or fewer windows than
// one global batch.
DataSources open_data(const ModelConfig& config, const TrainOptions& options, int64_t global_batch);

}  // namespace llama2
