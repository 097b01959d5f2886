// metrics.jsonl: one JSON object per optimizer step.
#include "llama2/metrics/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"

namespace llama2 {

MetricsLog::MetricsLog(const std::string& output_dir, bool writer) : dir_(output_dir) {
  ensure_directory(output_dir, "--output_dir");
  if (!writer) return;
  ensure_directory(output_dir + "/tensorboard", "--output_dir");
  tensorboard_ = std::make_unique<TensorBoardWriter>(output_dir + "/tensorboard");
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
  if (std::isfinite(m.compute_s_max)) {
    j["compute_s_min"] = m.compute_s_min;
    j["compute_s_max"] = m.compute_s_max;
  }
  if (std::isfinite(m.link_rtt_s_max)) {
    j["link_rtt_s_median"] = m.link_rtt_s_median;
    j["link_rtt_s_max"] = m.link_rtt_s_max;
  }
  for (const auto& [name, loss] : m.val_losses) j["val_loss_per_corpus"][name] = loss;
  for (const auto& [name, tokens] : m.corpus_tokens) j["corpus_tokens"][name] = tokens;
  if (!m.sample.empty()) j["sample"] = m.sample;
  jsonl_ << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  jsonl_.flush();
  if (!jsonl_) throw RuntimeFailure("cannot write " + dir_ + "/metrics.jsonl (" + std::strerror(errno) + ")");
  for (const char* key : {"loss", "lr", "grad_norm", "tokens_per_s", "seq_per_s", "mfu", "val_loss"})
    if (j.contains(key)) tensorboard_->scalar(std::string("train/") + key, m.step, j[key].get<double>());
  tensorboard_->scalar("train/peak_rss_gib", m.step, m.peak_rss_bytes / 1073741824.0);
  if (std::isfinite(m.link_rtt_s_max)) tensorboard_->scalar("train/link_rtt_ms_max", m.step, 1e3 * m.link_rtt_s_max);
  for (const auto& [name, loss] : m.val_losses) tensorboard_->scalar("val_loss/" + name, m.step, loss);
  for (const auto& [name, tokens] : m.corpus_tokens)
    tensorboard_->scalar("corpus_tokens/" + name, m.step, static_cast<double>(tokens));
  if (!m.sample.empty()) tensorboard_->text("samples/greedy", m.step, m.sample);
  tensorboard_->flush();
}

void MetricsLog::finish(const RunSummary& s) {
  if (!jsonl_.is_open()) return;
  nlohmann::json j = {{"steps", s.steps}, {"steps_this_run", s.steps_this_run}, {"final_loss", s.final_loss},
                      {"seconds", s.seconds}, {"tokens_per_s", s.tokens_per_s}, {"seq_per_s", s.seq_per_s},
                      {"mfu", s.mfu}, {"peak_rss_bytes", s.peak_rss_bytes},
                      {"planned_rss_bytes", s.planned_rss_bytes}, {"world", s.world}, {"tp", s.tp},
                      {"dp", s.dp}};
  if (std::isfinite(s.final_val_loss)) j["final_val_loss"] = s.final_val_loss;
  if (s.timed_steps > 0) {  // mean seconds per step in each phase; "elementwise" is the rest
    nlohmann::json phases = nlohmann::json::object();
    double accounted = 0;
    for (size_t i = 0; i < s.phase_seconds.size(); ++i) {
      phases[kPhaseNames[i]] = s.phase_seconds[i] / s.timed_steps;
      accounted += s.phase_seconds[i];
    }
    phases["elementwise"] = (s.timed_seconds - accounted) / s.timed_steps;
    j["step_seconds"] = s.timed_seconds / s.timed_steps;
    j["phase_seconds_per_step"] = phases;
  }
  const std::string text = j.dump(2) + "\n";
  AtomicFile file(dir_ + "/results.json");
  file.write(text.data(), text.size());
  file.commit();
}

}  // namespace llama2
