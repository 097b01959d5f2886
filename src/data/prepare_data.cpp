// prepare-data: read documents, encode on every core (BOS before, EOS after each), split, write shards.
#include "llama2/data/prepare_data.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "llama2/data/documents.h"
#include "llama2/data/token_shard.h"
#include "llama2/data/tokenizer.h"
#include "llama2/dist/layout.h"
#include "llama2/util/checksum.h"
#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"
#include "llama2/util/human_units.h"

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

// Rank `rank`'s contiguous share of the pieces: those whose first byte falls in its 1/size of all the bytes.
std::vector<InputPiece> share_of(const std::vector<InputPiece>& pieces, int rank, int size) {
  int64_t total = 0;
  for (const InputPiece& p : pieces) total += p.end - p.begin;
  std::vector<InputPiece> mine;
  int64_t at = 0;
  for (const InputPiece& p : pieces) {
    const int owner = total > 0 ? static_cast<int>(std::min<int64_t>(at * size / total, size - 1)) : 0;
    if (owner == rank) mine.push_back(p);
    at += p.end - p.begin;
  }
  return mine;
}

// The corpus being written: each document to its split by its global index, in order.
struct CorpusWriter {
  CorpusWriter(const PrepareOptions& o, const DatasetIndex& index)
      : seed(o.seed), val_fraction(o.val_fraction),
        train(o.output_dir, "train", index.vocab_size, o.shard_tokens),
        validation(o.output_dir, "validation", index.vocab_size, o.shard_tokens) {}
  void add(const std::vector<uint32_t>& ids) {
    const bool held_out = is_validation(seed, summary.documents++, val_fraction);
    (held_out ? validation : train).add(ids);
    (held_out ? summary.validation_tokens : summary.train_tokens) += static_cast<int64_t>(ids.size());
  }
  uint64_t seed;
  double val_fraction;
  SplitWriter train, validation;
  PrepareSummary summary;
};

// A rank's encoded documents in <output_dir>/.prepare-tmp/rank-<r>.tokens: per document its token count (uint64)
// and tokens (uint32), in order.
std::string tmp_file(const std::string& output_dir, int rank) {
  return fmt::format("{}/.prepare-tmp/rank-{:05d}.tokens", output_dir, rank);
}

void replay(const std::string& path, CorpusWriter& corpus) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RuntimeFailure("prepare-data: cannot read " + path + " (is --output_dir on a shared filesystem?)");
  std::vector<uint32_t> ids;
  for (uint64_t n; in.read(reinterpret_cast<char*>(&n), sizeof n);) {
    ids.resize(n);
    if (!in.read(reinterpret_cast<char*>(ids.data()), static_cast<std::streamsize>(n * sizeof(uint32_t))))
      throw RuntimeFailure("prepare-data: " + path + " is truncated");
    corpus.add(ids);
  }
}

// "prepare-data: 120.5/400.0 MB, 3100 documents, 1234567 tokens, 812345 tokens/s, ETA 5m" every few seconds.
class Progress {
 public:
  Progress(int64_t total_bytes, std::string who) : total_(total_bytes), who_(std::move(who)) {}
  void add(int64_t bytes, int64_t documents, int64_t tokens) {
    bytes_ += bytes;
    documents_ += documents;
    tokens_ += tokens;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(5) && bytes_ < total_) return;
    last_ = now;
    const double s = std::max(std::chrono::duration<double>(now - start_).count(), 1e-9);
    const double eta = bytes_ > 0 ? s * static_cast<double>(total_ - bytes_) / static_cast<double>(bytes_) : 0;
    std::fprintf(stderr, "prepare-data%s: %.1f/%.1f MB, %lld documents, %lld tokens, %.0f tokens/s, ETA %s\n",
                 who_.c_str(), bytes_ / 1e6, total_ / 1e6, static_cast<long long>(documents_),
                 static_cast<long long>(tokens_), tokens_ / s, format_duration(eta).c_str());
  }

 private:
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
  int64_t total_, bytes_ = 0, documents_ = 0, tokens_ = 0;
  std::string who_;
};

}  // namespace

PrepareSummary prepare_data(const PrepareOptions& o, const PrepareRanks& ranks) {
  const auto start = std::chrono::steady_clock::now();
  if (o.val_fraction < 0 || o.val_fraction >= 1)
    throw BadInput(fmt::format("--val_fraction = {} is invalid; expected a number in [0, 1)", o.val_fraction));
  const std::vector<std::string> files = expand_inputs(o.inputs);
  if (files.empty()) throw BadInput("--input: no .txt or .jsonl files found; expected at least one document");
  const Tokenizer tok(o.tokenizer);
  ensure_directory(o.output_dir, "--output_dir");
  const int threads = default_threads(o.threads, 1);
  DatasetIndex index;
  index.tokenizer_sha256 = sha256_file(o.tokenizer);
  index.vocab_size = tok.vocab_size();
  index.bos_id = tok.bos_id();
  index.eos_id = tok.eos_id();

  // Encode this rank's share: straight into the corpus with one rank, else into its temporary file.
  const bool alone = ranks.size == 1;
  const std::string tmp_dir = o.output_dir + "/.prepare-tmp";
  if (!alone) {
    if (ranks.rank == 0) fs::remove_all(tmp_dir);  // a killed run's
    ranks.barrier();
    ensure_directory(tmp_dir, "--output_dir");
  }
  std::unique_ptr<CorpusWriter> corpus = alone ? std::make_unique<CorpusWriter>(o, index) : nullptr;
  std::ofstream tmp;
  if (!alone) tmp.open(tmp_file(o.output_dir, ranks.rank), std::ios::binary);
  const std::vector<InputPiece> mine = share_of(input_pieces(files, o.piece_mib << 20), ranks.rank, ranks.size);
  int64_t my_bytes = 0;
  for (const InputPiece& p : mine) my_bytes += p.end - p.begin;
  Progress progress(my_bytes, alone ? "" : fmt::format(" (rank {} of {})", ranks.rank, ranks.size));
  std::vector<Document> batch;  // documents of several pieces, encoded together on all threads
  int64_t batch_bytes = 0;
  for (size_t i = 0; i < mine.size(); ++i) {
    for (Document& doc : read_documents(mine[i])) batch.push_back(std::move(doc));
    batch_bytes += mine[i].end - mine[i].begin;
    if (batch_bytes < (int64_t{16} << 20) && batch.size() < 256 && i + 1 < mine.size()) continue;
    int64_t tokens = 0;
    for (const auto& ids : encode_all(tok, batch, threads)) {
      tokens += static_cast<int64_t>(ids.size());
      if (corpus) {
        corpus->add(ids);
        continue;
      }
      const uint64_t n = ids.size();
      tmp.write(reinterpret_cast<const char*>(&n), sizeof n);
      tmp.write(reinterpret_cast<const char*>(ids.data()), static_cast<std::streamsize>(n * sizeof(uint32_t)));
    }
    progress.add(batch_bytes, static_cast<int64_t>(batch.size()), tokens);
    batch.clear();
    batch_bytes = 0;
  }
  if (!alone) {
    if (!tmp.flush()) throw RuntimeFailure("prepare-data: cannot write " + tmp_file(o.output_dir, ranks.rank));
    tmp.close();
    ranks.barrier();
    if (ranks.rank != 0) {
      ranks.barrier();  // rank 0 writes the corpus
      return {};
    }
    corpus = std::make_unique<CorpusWriter>(o, index);
    for (int r = 0; r < ranks.size; ++r) replay(tmp_file(o.output_dir, r), *corpus);
  }
  if (corpus->summary.documents == 0) throw BadInput("--input: every document is empty; expected some text");
  index.train = corpus->train.finish();
  index.validation = corpus->validation.finish();
  write_index(o.output_dir, index);
  if (!alone) {
    fs::remove_all(tmp_dir);
    ranks.barrier();
  }
  corpus->summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return corpus->summary;
}

}  // namespace llama2
