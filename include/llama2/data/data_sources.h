// Owns the choice of data for a run: the synthetic stream, one prepared corpus or a weighted blend of several, each
// checked against the model's vocabulary, the tokenizer it was made with, and the global batch.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llama2/config/config.h"
#include "llama2/config/train_options.h"
#include "llama2/data/blend.h"
#include "llama2/data/samples.h"

namespace llama2 {

// One corpus of --data_dir: its directory, the name metrics key it by (the directory's own name) and its weight.
struct Corpus {
  std::string dir, name;
  double weight = 1;
};

// --data_dir's corpora: one DIR (weight 1), or WEIGHT DIR pairs (weights positive, any scale). BadInput naming the
// value and the form expected otherwise.
std::vector<Corpus> data_blend(const std::vector<std::string>& data_dir);

// A validation split: samples [offset, offset + n) of `samples` are the same windows at every evaluation.
struct ValidationSet {
  std::string name;  // the corpus's, or "synthetic"
  double weight = 1;  // its share of the blend's validation loss
  std::unique_ptr<SampleSource> samples;
  int64_t offset = 0;
};

struct DataSources {
  std::unique_ptr<SampleSource> train;
  const BlendedSamples* blend = nullptr;  // `train` when it blends several corpora
  std::vector<std::string> corpus_names;  // the blend's, in --data_dir order
  std::vector<ValidationSet> validation;  // empty unless --eval_interval > 0 (and a split holds a window)
  std::string corpus = "synthetic";  // which data: sha256 of the corpus's index.json (a blend: of its weights and those)
  std::string tokenizer;             // sha256 of the tokenizer the corpus was prepared with ("" for synthetic data)
};

// --synthetic_data (validation: synthetic samples from 2^40 on) or --data_dir. Throws BadInput for a
// missing/bad corpus, a tokenizer other than --tokenizer (or than another corpus's), ids beyond vocab_size, or a
// single corpus with fewer windows than one global batch.
DataSources open_data(const ModelConfig& config, const TrainOptions& options, int64_t global_batch);

}  // namespace llama2
