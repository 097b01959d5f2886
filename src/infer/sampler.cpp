// Greedy and temperature / top-k / top-p sampling over fp64 probabilities.
#include "llama2/infer/sampler.h"

#include <ATen/ATen.h>

namespace llama2 {

Sampler::Sampler(const SamplingOptions& options) : options_(options), engine_(options.seed) {}

int64_t Sampler::next(const at::Tensor& logits) {
  const at::Tensor z = logits.to(at::kDouble).reshape({-1});
  if (options_.temperature <= 0 || options_.top_k == 1) return z.argmax().item<int64_t>();
  // Candidates by descending probability; ties keep the lower id first (stable sort).
  auto [sorted, ids] = (z / options_.temperature).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true);
  int64_t keep = options_.top_k > 0 ? std::min<int64_t>(options_.top_k, sorted.numel()) : sorted.numel();
  at::Tensor probs = sorted.narrow(0, 0, keep).softmax(0);
  if (options_.top_p < 1) {
    const at::Tensor before = probs.cumsum(0) - probs;  // mass of the more likely tokens
    keep = std::max<int64_t>(1, (before < options_.top_p).sum().item<int64_t>());
    probs = probs.narrow(0, 0, keep) / probs.narrow(0, 0, keep).sum();
  }
  // One uniform draw in [0, 1) with 53 random bits, then the first token whose cumulative probability exceeds it.
  const double u = static_cast<double>(engine_() >> 11) * 0x1.0p-53;
  const double* p = probs.data_ptr<double>();
  double mass = 0;
  for (int64_t i = 0; i < keep; ++i) {
    mass += p[i];
    if (u < mass) return ids[i].item<int64_t>();
  }
  return ids[keep - 1].item<int64_t>();
}

}  // namespace llama2
