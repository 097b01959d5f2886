// Owns the weighted blend of several corpora (Megatron's BlendedDataset rule): global sample g is the next sample of
// the corpus furthest behind its share, so every prefix of the stream holds each corpus within one sample of its
// weight; a function of the weights and g alone, so any DP size and any resume point see the same stream.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "llama2/data/samples.h"

namespace llama2 {

class BlendedSamples : public SampleSource {
 public:
  // `weights`: positive, any scale (normalised here); one per source. Each source keeps its own epochs and order.
  BlendedSamples(std::vector<std::unique_ptr<SampleSource>> sources, std::vector<double> weights);

  // Global samples [first, first + count) → [count, seq_len + 1] int64, each from its corpus.
  at::Tensor samples(int64_t first, int64_t count) const override;
  // Which corpus global sample g comes from, and its index in that corpus: [count] each.
  void locate(int64_t first, int64_t count, std::vector<int>& corpus, std::vector<int64_t>& index) const;
  // How many of global samples [0, end) each corpus supplied.
  std::vector<int64_t> counts(int64_t end) const;
  const std::vector<double>& weights() const { return weights_; }  // normalised

 private:
  // Corpus counts before global sample block * kBlock, computed once up to the furthest block asked for.
  std::vector<int64_t> counts_at_block(int64_t block) const;
  int choose(int64_t g, const std::vector<int64_t>& counts) const;  // the corpus of sample g after `counts`

  static constexpr int64_t kBlock = 4096;
  std::vector<std::unique_ptr<SampleSource>> sources_;
  std::vector<double> weights_;
  mutable std::mutex mutex_;
  mutable std::vector<std::vector<int64_t>> block_counts_;  // [block][corpus]
};

}  // namespace llama2
