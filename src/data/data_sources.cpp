// Opens the training and validation samples a run asked for, with the checks that need the model.
#include "llama2/data/data_sources.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "llama2/data/synthetic.h"
#include "llama2/data/token_windows.h"
#include "llama2/util/checksum.h"
#include "llama2/util/errors.h"

namespace llama2 {
namespace {

std::string joined(const std::vector<std::string>& values) { return fmt::format("{}", fmt::join(values, " ")); }

// The directory's own name ("web" for data/web/).
std::string own_name(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  const std::string name = std::filesystem::path(d).filename().string();
  return name.empty() ? dir : name;
}

// Each corpus by its own name, or by the path as given when two corpora share a name.
void name_corpora(std::vector<Corpus>& corpora) {
  for (Corpus& c : corpora) {
    c.name = own_name(c.dir);
    for (const Corpus& other : corpora)
      if (&c != &other && own_name(other.dir) == c.name) c.name = c.dir;
  }
}

// A corpus's index, checked against --tokenizer, the first corpus's tokenizer and the model's vocabulary.
DatasetIndex checked_index(const Corpus& corpus, const TrainOptions& o, const ModelConfig& c,
                           const std::string& first_tokenizer) {
  const DatasetIndex index = read_index(corpus.dir);
  if (!o.tokenizer.empty() && sha256_file(o.tokenizer) != index.tokenizer_sha256)
    throw BadInput(fmt::format("--data_dir = {} was prepared with tokenizer sha256 {}, but --tokenizer = {} differs; "
                               "expected the same tokenizer.model",
                               corpus.dir, index.tokenizer_sha256, o.tokenizer));
  if (!first_tokenizer.empty() && index.tokenizer_sha256 != first_tokenizer)
    throw BadInput(fmt::format("--data_dir: {} was prepared with tokenizer sha256 {}, the first corpus with {}; "
                               "expected every corpus of a blend prepared with one tokenizer",
                               corpus.dir, index.tokenizer_sha256, first_tokenizer));
  if (index.vocab_size > c.vocab_size)
    throw BadInput(fmt::format("--data_dir = {}: its tokenizer has {} pieces but the config's vocab_size is {}; "
                               "expected vocab_size >= {}",
                               corpus.dir, index.vocab_size, c.vocab_size, index.vocab_size));
  return index;
}

// The validation split of a corpus as a set, or none (with a warning) when it holds no window.
void add_validation(DataSources& d, const Corpus& corpus, const DatasetIndex& index, const TrainOptions& o,
                    const ModelConfig& c) {
  if (o.eval_interval <= 0) return;
  if (index.validation.tokens <= o.seq_len) {
    spdlog::warn("--eval_interval = {}: --data_dir {} holds {} validation tokens, no window of --seq_len {} + 1; no "
                 "validation loss (prepare-data --val_fraction sets the split)",
                 o.eval_interval, corpus.dir, index.validation.tokens, o.seq_len);
    return;
  }
  d.validation.push_back({corpus.name, corpus.weight,
                          std::make_unique<TokenWindows>(corpus.dir, index.validation, o.seq_len, c.vocab_size,
                                                         o.seed, false),
                          0});
}

// Each corpus of a blend shuffles its windows with its own seed, so two copies of one corpus do not read in step.
uint64_t corpus_seed(uint64_t seed, size_t corpus) { return seed + 0x9E3779B97F4A7C15ull * (corpus + 1); }

}  // namespace

std::vector<Corpus> data_blend(const std::vector<std::string>& data_dir) {
  std::vector<Corpus> corpora;
  if (data_dir.size() == 1) {
    corpora.push_back({data_dir[0], "", 1});
  } else if (data_dir.size() % 2 == 0) {
    for (size_t i = 0; i < data_dir.size(); i += 2) {
      char* end = nullptr;
      const double weight = std::strtod(data_dir[i].c_str(), &end);
      if (end == data_dir[i].c_str() || *end != '\0' || !std::isfinite(weight) || weight <= 0)
        throw BadInput(fmt::format("--data_dir = {}: weight '{}' is not a positive number; expected DIR, or WEIGHT DIR "
                                   "pairs such as --data_dir 0.7 data/web 0.3 data/code",
                                   joined(data_dir), data_dir[i]));
      corpora.push_back({data_dir[i + 1], "", weight});
    }
  } else if (!data_dir.empty()) {
    throw BadInput(fmt::format("--data_dir = {}: {} values; expected DIR, or WEIGHT DIR pairs such as --data_dir 0.7 "
                               "data/web 0.3 data/code",
                               joined(data_dir), data_dir.size()));
  }
  double total = 0;
  for (const Corpus& c : corpora) total += c.weight;
  for (Corpus& c : corpora) c.weight /= total;
  name_corpora(corpora);
  return corpora;
}

DataSources open_data(const ModelConfig& c, const TrainOptions& o, int64_t global_batch) {
  DataSources d;
  if (o.synthetic_data) {
    d.train = std::make_unique<SyntheticData>(c.vocab_size, o.seq_len, o.seed, o.synthetic_task);
    d.validation.push_back(
        {"synthetic", 1, std::make_unique<SyntheticData>(c.vocab_size, o.seq_len, o.seed, o.synthetic_task),
         int64_t{1} << 40});
    if (o.synthetic_task != "bigram") d.corpus = "synthetic " + o.synthetic_task;
    return d;
  }
  const std::vector<Corpus> corpora = data_blend(o.data_dir);
  if (corpora.empty())
    throw BadInput("no training data: pass --data_dir DIR (written by prepare-data) or --synthetic_data");
  const bool blend = corpora.size() > 1;
  std::vector<std::unique_ptr<SampleSource>> sources;
  std::vector<double> weights;
  std::string identity;  // a blend's: each weight with its corpus's index.json sha256
  const int64_t run_samples = o.max_steps * global_batch;
  for (size_t i = 0; i < corpora.size(); ++i) {
    const Corpus& corpus = corpora[i];
    const DatasetIndex index = checked_index(corpus, o, c, d.tokenizer);
    d.tokenizer = index.tokenizer_sha256;
    auto train = std::make_unique<TokenWindows>(corpus.dir, index.train, o.seq_len, c.vocab_size,
                                                blend ? corpus_seed(o.seed, i) : o.seed, true);
    const std::string sha = sha256_file(corpus.dir + "/index.json");
    if (!blend && train->windows() < global_batch)
      throw BadInput(fmt::format("--data_dir = {}: {} train tokens make {} windows of {} + 1, fewer than one global "
                                 "batch of {} samples",
                                 corpus.dir, train->tokens(), train->windows(), o.seq_len, global_batch));
    const double epochs = corpus.weight * static_cast<double>(run_samples) / static_cast<double>(train->windows());
    spdlog::info("data: {}{} train tokens = {} windows of {} + 1; this run reads {:.2f} epochs of it{}; {} validation "
                 "tokens",
                 blend ? fmt::format("{} (weight {:.4f}, {}): ", corpus.name, corpus.weight, corpus.dir) : "",
                 train->tokens(), train->windows(), o.seq_len, epochs,
                 epochs > 1 ? " (re-read, each epoch in a new order)" : "", index.validation.tokens);
    identity += fmt::format("{} {}\n", corpus.weight, sha);
    d.corpus = sha;
    d.corpus_names.push_back(corpus.name);
    sources.push_back(std::move(train));
    weights.push_back(corpus.weight);
    add_validation(d, corpus, index, o, c);
  }
  if (!blend) {
    d.train = std::move(sources.front());
    return d;
  }
  auto blended = std::make_unique<BlendedSamples>(std::move(sources), weights);
  d.blend = blended.get();
  d.train = std::move(blended);
  d.corpus = "blend " + sha256_hex(identity.data(), identity.size());
  return d;
}

}  // namespace llama2
