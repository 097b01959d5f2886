// Owns what a run reports (rank 0): per step <output_dir>/metrics.jsonl and TensorBoard scalars in
// <output_dir>/tensorboard/, and <output_dir>/results.json at the end. Knows nothing of how they were measured.
#pragma once
#include <cmath>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "llama2/metrics/tensorboard.h"
#include "llama2/util/phases.h"

namespace llama2 {

struct StepMetrics {
  int64_t step = 0, max_steps = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0, seq_per_s = 0, mfu = 0, step_time_s = 0;
  int64_t peak_rss_bytes = 0, consumed_tokens = 0;
  double val_loss = std::nan("");  // set on evaluation steps only (a blend: over its corpora, by weight)
  std::vector<std::pair<std::string, double>> val_losses;      // a blend's, per corpus, on evaluation steps
  std::vector<std::pair<std::string, int64_t>> corpus_tokens;  // a blend's tokens read so far, per corpus
  double compute_s = 0;  // this rank's step time less its waits in collectives (not written)
  double compute_s_min = std::nan(""), compute_s_max = std::nan("");  // over ranks (several ranks only)
  // Heartbeat round trip to the nearest other node: the median node's and the slowest's (several nodes only)
  double link_rtt_s_median = std::nan(""), link_rtt_s_max = std::nan("");
  std::string sample;  // a greedy continuation of the sample prompt, on sample steps only
};

struct RunSummary {
  int64_t steps = 0, steps_this_run = 0, world = 1, tp = 1, dp = 1;
  double final_loss = 0, final_val_loss = std::nan("");
  double seconds = 0, tokens_per_s = 0, seq_per_s = 0, mfu = 0;  // this run, after its first step
  int64_t peak_rss_bytes = 0;
  int64_t planned_rss_bytes = 0;  // plan_memory's total for this layout
  int64_t timed_steps = 0;      // steps the throughput and breakdown average over
  double timed_seconds = 0;
  PhaseSeconds phase_seconds{};  // summed over the timed steps (phases.h)
};

class MetricsLog {
 public:
  // Creates `output_dir` (BadInput if it cannot) and, when `writer`, opens metrics.jsonl for appending
  // and a new TensorBoard event file.
  MetricsLog(const std::string& output_dir, bool writer);
  void write(const StepMetrics& m);
  void finish(const RunSummary& summary);  // results.json (atomically)

 private:
  std::string dir_;
  std::ofstream jsonl_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
};

}  // namespace llama2
