// The blend's greedy rule, with the corpus counts checkpointed every kBlock samples so that any global sample is
// located by replaying at most one block.
#include "llama2/data/blend.h"

#include <numeric>

#include <ATen/ATen.h>

#include "llama2/util/errors.h"

namespace llama2 {

BlendedSamples::BlendedSamples(std::vector<std::unique_ptr<SampleSource>> sources, std::vector<double> weights)
    : sources_(std::move(sources)), weights_(std::move(weights)) {
  if (sources_.empty() || sources_.size() != weights_.size())
    throw RuntimeFailure("a blend needs one weight per corpus");
  const double total = std::accumulate(weights_.begin(), weights_.end(), 0.0);
  for (double& w : weights_) w /= total;
  block_counts_.push_back(std::vector<int64_t>(sources_.size(), 0));
}

// The corpus furthest behind its share once sample g is taken: the largest w·(g + 1) − count (the first on a tie).
int BlendedSamples::choose(int64_t g, const std::vector<int64_t>& counts) const {
  int best = 0;
  double best_error = -1e300;
  for (size_t c = 0; c < weights_.size(); ++c) {
    const double error = weights_[c] * static_cast<double>(g + 1) - static_cast<double>(counts[c]);
    if (error > best_error) {
      best_error = error;
      best = static_cast<int>(c);
    }
  }
  return best;
}

std::vector<int64_t> BlendedSamples::counts_at_block(int64_t block) const {
  std::lock_guard<std::mutex> lock(mutex_);
  while (static_cast<int64_t>(block_counts_.size()) <= block) {
    std::vector<int64_t> counts = block_counts_.back();
    const int64_t start = (static_cast<int64_t>(block_counts_.size()) - 1) * kBlock;
    for (int64_t g = start; g < start + kBlock; ++g) ++counts[static_cast<size_t>(choose(g, counts))];
    block_counts_.push_back(std::move(counts));
  }
  return block_counts_[static_cast<size_t>(block)];
}

void BlendedSamples::locate(int64_t first, int64_t count, std::vector<int>& corpus,
                            std::vector<int64_t>& index) const {
  corpus.resize(static_cast<size_t>(count));
  index.resize(static_cast<size_t>(count));
  std::vector<int64_t> counts = counts_at_block(first / kBlock);
  for (int64_t g = first / kBlock * kBlock; g < first + count; ++g) {
    const int c = choose(g, counts);
    if (g >= first) {
      corpus[static_cast<size_t>(g - first)] = c;
      index[static_cast<size_t>(g - first)] = counts[static_cast<size_t>(c)];
    }
    ++counts[static_cast<size_t>(c)];
  }
}

std::vector<int64_t> BlendedSamples::counts(int64_t end) const {
  std::vector<int64_t> counts = counts_at_block(end / kBlock);
  for (int64_t g = end / kBlock * kBlock; g < end; ++g) ++counts[static_cast<size_t>(choose(g, counts))];
  return counts;
}

at::Tensor BlendedSamples::samples(int64_t first, int64_t count) const {
  std::vector<int> corpus;
  std::vector<int64_t> index;
  locate(first, count, corpus, index);
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < count; ++i) rows.push_back(sources_[corpus[i]]->samples(index[i], 1));
  return at::cat(rows, 0);  // [count, seq_len + 1]
}

}  // namespace llama2
