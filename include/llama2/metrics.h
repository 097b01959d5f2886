// Owns what a run reports per step: the JSON-lines file <output_dir>/metrics.jsonl (rank 0) and the
// console line. Knows nothing of how the numbers were measured.
#pragma once
#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>

namespace llama2 {

struct StepMetrics {
  int64_t step = 0, max_steps = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0, seq_per_s = 0, mfu = 0, step_time_s = 0;
  int64_t peak_rss_bytes = 0, consumed_tokens = 0;
  double val_loss = std::nan("");  // set on evaluation steps only
};

class MetricsLog {
 public:
  // Creates `output_dir` (BadInput if it cannot) and, when `writer`, opens metrics.jsonl for appending.
  MetricsLog(const std::string& output_dir, bool writer);
  void write(const StepMetrics& m);

 private:
  std::ofstream jsonl_;
};

// Creates `dir` and its parents; throws BadInput naming the directory and the reason.
void ensure_directory(const std::string& dir, const std::string& flag);

}  // namespace llama2
