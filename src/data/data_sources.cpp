// Opens the training and validation samples a run asked for, with the checks that need the model.
#include "llama2/data/data_sources.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "llama2/data/synthetic.h"
#include "llama2/data/token_windows.h"
#include "llama2/util/checksum.h"
#include "llama2/util/errors.h"

namespace llama2 {

DataSources open_data(const ModelConfig& c, const TrainOptions& o, int64_t global_batch) {
  DataSources d;
  if (o.synthetic_data) {
    d.train = std::make_unique<SyntheticData>(c.vocab_size, o.seq_len, o.seed);
    d.validation = std::make_unique<SyntheticData>(c.vocab_size, o.seq_len, o.seed);
    d.validation_offset = int64_t{1} << 40;
    return d;
  }
  if (o.data_dir.empty())
    throw BadInput("no training data: pass --data_dir DIR (written by prepare-data) or --synthetic_data");
  const DatasetIndex index = read_index(o.data_dir);
  if (!o.tokenizer.empty() && sha256_file(o.tokenizer) != index.tokenizer_sha256)
    throw BadInput(fmt::format("--data_dir = {} was prepared with tokenizer sha256 {}, but --tokenizer = {} differs; "
                               "expected the same tokenizer.model",
                               o.data_dir, index.tokenizer_sha256, o.tokenizer));
  if (index.vocab_size > c.vocab_size)
    throw BadInput(fmt::format("--data_dir = {}: its tokenizer has {} pieces but the config's vocab_size is {}; "
                               "expected vocab_size >= {}",
                               o.data_dir, index.vocab_size, c.vocab_size, index.vocab_size));
  auto train = std::make_unique<TokenWindows>(o.data_dir, index.train, o.seq_len, c.vocab_size, o.seed, true);
  if (train->windows() < global_batch)
    throw BadInput(fmt::format("--data_dir = {}: {} train tokens make {} windows of {} + 1, fewer than one global "
                               "batch of {} samples",
                               o.data_dir, train->tokens(), train->windows(), o.seq_len, global_batch));
  spdlog::info("data: {} train tokens = {} windows of {} + 1 ({} global batches per epoch), {} validation tokens",
               train->tokens(), train->windows(), o.seq_len, train->windows() / global_batch, index.validation.tokens);
  d.train = std::move(train);
  d.corpus = sha256_file(o.data_dir + "/index.json");
  d.tokenizer = index.tokenizer_sha256;
  if (o.eval_interval > 0 && index.validation.tokens <= o.seq_len)
    spdlog::warn("--eval_interval = {}: --data_dir = {} holds {} validation tokens, no window of --seq_len {} + 1; "
                 "no validation loss (prepare-data --val_fraction sets the split)",
                 o.eval_interval, o.data_dir, index.validation.tokens, o.seq_len);
  else if (o.eval_interval > 0)
    d.validation = std::make_unique<TokenWindows>(o.data_dir, index.validation, o.seq_len, c.vocab_size, o.seed, false);
  return d;
}

}  // namespace llama2
