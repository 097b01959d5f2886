// metrics.jsonl: one JSON object per optimizer step.
#include "llama2/metrics.h"

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "llama2/errors.h"

namespace llama2 {

void ensure_directory(const std::string& dir, const std::string& flag) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw BadInput(flag + " = " + dir + ": cannot create the directory (" + (ec ? ec.message() : "not a directory") +
                   "); expected a writable path");
}

MetricsLog::MetricsLog(const std::string& output_dir, bool writer) {
  ensure_directory(output_dir, "--output_dir");
  if (!writer) return;
  const std::string path = output_dir + "/metrics.jsonl";
  jsonl_.open(path, std::ios::app);
  if (!jsonl_) throw BadInput("--output_dir = " + output_dir + ": cannot write " + path + "; expected a writable directory");
}

void MetricsLog::write(const StepMetrics& m) {
  if (!jsonl_.is_open()) return;
  nlohmann::json j = {{"step", m.step},           {"loss", m.loss},
                            {"lr", m.lr},               {"grad_norm", m.grad_norm},
                            {"tokens_per_s", m.tokens_per_s}, {"seq_per_s", m.seq_per_s},
                            {"mfu", m.mfu},             {"peak_rss_bytes", m.peak_rss_bytes},
                            {"step_time_s", m.step_time_s}, {"consumed_tokens", m.consumed_tokens}};
  if (std::isfinite(m.val_loss)) j["val_loss"] = m.val_loss;
  jsonl_ << j.dump() << '\n';
  jsonl_.flush();
}

}  // namespace llama2
