// prepare-data: read documents, encode on every core (BOS before, EOS after each), split, write shards.
#include "llama2/data/prepare_data.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "llama2/data/documents.h"
#include "llama2/data/token_shard.h"
#include "llama2/data/tokenizer.h"
#include "llama2/util/checksum.h"
#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"

namespace llama2 {
namespace fs = std::filesystem;

namespace {

// Encodes docs on `threads` threads; result[i] = BOS + ids(doc i) + EOS.
std::vector<std::vector<uint32_t>> encode_all(const Tokenizer& tok, const std::vector<Document>& docs, int threads) {
  std::vector<std::vector<uint32_t>> out(docs.size());
  std::vector<std::thread> workers;
  std::exception_ptr error;
  std::mutex error_mutex;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      try {
        for (size_t i = static_cast<size_t>(t); i < docs.size(); i += static_cast<size_t>(threads)) {
          const std::vector<int> ids = tok.encode(docs[i].text);
          out[i].reserve(ids.size() + 2);
          out[i].push_back(static_cast<uint32_t>(tok.bos_id()));
          out[i].insert(out[i].end(), ids.begin(), ids.end());
          out[i].push_back(static_cast<uint32_t>(tok.eos_id()));
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        error = std::current_exception();
      }
    });
  for (auto& w : workers) w.join();
  if (error) std::rethrow_exception(error);
  return out;
}

// Accumulates one split's tokens and writes them as shards of at most `shard_tokens`.
class SplitWriter {
 public:
  SplitWriter(std::string dir, std::string name, int64_t vocab, int64_t shard_tokens)
      : dir_(std::move(dir)), name_(std::move(name)), vocab_(vocab), shard_tokens_(shard_tokens) {}

  void add(const std::vector<uint32_t>& doc) {
    buffer_.insert(buffer_.end(), doc.begin(), doc.end());
    ++buffer_docs_;
    ++index_.documents;
    index_.tokens += static_cast<int64_t>(doc.size());
    if (static_cast<int64_t>(buffer_.size()) >= shard_tokens_) flush();
  }

  SplitIndex finish() {
    if (!buffer_.empty() || index_.shards.empty()) flush();
    return index_;
  }

 private:
  void flush() {
    const std::string file = fmt::format("{}-{:05d}.bin", name_, index_.shards.size());
    write_shard(dir_ + "/" + file, buffer_, vocab_, buffer_docs_);
    index_.shards.push_back(file);
    buffer_.clear();
    buffer_docs_ = 0;
  }

  std::string dir_, name_;
  int64_t vocab_, shard_tokens_;
  std::vector<uint32_t> buffer_;
  int64_t buffer_docs_ = 0;
  SplitIndex index_;
};

bool is_validation(uint64_t seed, int64_t document, double fraction) {
  uint64_t x = seed ^ (static_cast<uint64_t>(document) * 0x9E3779B97F4A7C15ull);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  return static_cast<double>(x >> 11) / static_cast<double>(uint64_t{1} << 53) < fraction;
}

}  // namespace

PrepareSummary prepare_data(const PrepareOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  if (o.val_fraction < 0 || o.val_fraction >= 1)
    throw BadInput(fmt::format("--val_fraction = {} is invalid; expected a number in [0, 1)", o.val_fraction));
  const std::vector<std::string> files = expand_inputs(o.inputs);
  if (files.empty()) throw BadInput("--input: no .txt or .jsonl files found; expected at least one document");
  const Tokenizer tok(o.tokenizer);
  ensure_directory(o.output_dir, "--output_dir");
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  DatasetIndex index;
  index.tokenizer_sha256 = sha256_file(o.tokenizer);
  index.vocab_size = tok.vocab_size();
  index.bos_id = tok.bos_id();
  index.eos_id = tok.eos_id();
  SplitWriter train(o.output_dir, "train", index.vocab_size, o.shard_tokens);
  SplitWriter validation(o.output_dir, "validation", index.vocab_size, o.shard_tokens);
  PrepareSummary summary;
  std::vector<Document> batch;  // documents of several files, encoded together on all threads
  size_t batch_bytes = 0;
  auto last_report = start;
  const auto flush = [&](size_t files_done) {
    for (const auto& ids : encode_all(tok, batch, threads)) {
      const bool held_out = is_validation(o.seed, summary.documents++, o.val_fraction);
      (held_out ? validation : train).add(ids);
      (held_out ? summary.validation_tokens : summary.train_tokens) += static_cast<int64_t>(ids.size());
    }
    batch.clear();
    batch_bytes = 0;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_report < std::chrono::seconds(1) && files_done < files.size()) return;
    last_report = now;
    const double s = std::chrono::duration<double>(now - start).count();
    const int64_t tokens = summary.train_tokens + summary.validation_tokens;
    std::fprintf(stderr, "prepare-data: %zu/%zu files, %lld documents, %lld tokens, %.0f tokens/s\n", files_done,
                 files.size(), static_cast<long long>(summary.documents), static_cast<long long>(tokens),
                 tokens / std::max(s, 1e-9));
  };
  for (size_t f = 0; f < files.size(); ++f) {
    for (Document& doc : read_documents(files[f])) {
      batch_bytes += doc.text.size();
      batch.push_back(std::move(doc));
    }
    if (batch_bytes >= (size_t{16} << 20) || batch.size() >= 256 || f + 1 == files.size()) flush(f + 1);
  }
  if (summary.documents == 0) throw BadInput("--input: every document is empty; expected some text");
  index.train = train.finish();
  index.validation = validation.finish();
  write_index(o.output_dir, index);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace llama2
