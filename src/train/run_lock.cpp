// run.lock: its content written to a temporary file first, then hard-linked into place (link() is atomic on NFS and
// Lustre, unlike flock, and the lock never exists without its content); its holder described in JSON.
#include "llama2/train/run_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "llama2/util/errors.h"
#include "llama2/util/host_name.h"
#include "llama2/util/file_io.h"

namespace llama2 {
namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

nlohmann::json this_run() {
  const std::time_t now = std::time(nullptr);
  char started[32];
  std::strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return {{"host", host_name()}, {"pid", static_cast<int64_t>(getpid())}, {"slurm_job_id", env("SLURM_JOB_ID")},
          {"slurm_restart_count", env("SLURM_RESTART_COUNT")}, {"started", started}};
}

// The holder as read from the file; null if it cannot be read or parsed (a holder that died mid-write).
nlohmann::json read_holder(const std::string& path) {
  try {
    return nlohmann::json::parse(read_file(path), nullptr, false);
  } catch (const BadInput&) {
    return nullptr;
  }
}

// Whether a process of this host runs: it exists and is not a zombie (killed, not yet reaped by its parent).
bool process_runs(int64_t pid) {
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  try {
    const std::string stat = read_file(fmt::format("/proc/{}/stat", pid));
    const size_t after_name = stat.rfind(')');
    return after_name == std::string::npos || stat.compare(after_name + 1, 2, " Z") != 0;
  } catch (const BadInput&) {
    return true;  // no /proc: kill's answer stands
  }
}

// Slurm's word on a job: its state (RUNNING, COMPLETED, FAILED, ...), "gone" when the controller no longer knows
// it, "" when it cannot be asked (no scontrol, no controller): then nothing is concluded.
std::string slurm_job_state(const std::string& job) {
  if (job.find_first_not_of("0123456789_") != std::string::npos) return "";
  FILE* p = popen(("scontrol -o show job " + job + " 2>&1").c_str(), "r");
  if (!p) return "";
  std::string out;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, p)) out += buffer;
  pclose(p);
  const size_t at = out.find("JobState=");
  if (at != std::string::npos) return out.substr(at + 9, out.find_first_of(" \n", at) - at - 9);
  return out.find("Invalid job id") != std::string::npos ? "gone" : "";
}

// Why the holder is gone ("" while it may be alive): it is this Slurm job before a requeue, Slurm says its job no
// longer runs, or its pid ended on this host. A holder on another host outside Slurm is taken as alive: its pid
// cannot be checked from here.
std::string gone_because(const nlohmann::json& holder) {
  if (!holder.is_object()) return "it is unreadable";
  const std::string job = holder.value("slurm_job_id", "");
  if (!job.empty() && job == env("SLURM_JOB_ID")) return "it is this Slurm job's, from before a requeue";
  if (!job.empty()) {
    const std::string state = slurm_job_state(job);
    if (state == "gone") return fmt::format("Slurm no longer knows job {}", job);
    if (!state.empty() && state != "RUNNING" && state != "COMPLETING" && state != "SUSPENDED" &&
        state != "CONFIGURING")
      return fmt::format("Slurm says job {} is {}", job, state);
  }
  const int64_t pid = holder.value("pid", int64_t{0});
  if (holder.value("host", "") == host_name() && pid > 0 && !process_runs(pid))
    return fmt::format("its process {} no longer runs", pid);
  return "";
}

std::string describe(const nlohmann::json& holder) {
  if (!holder.is_object()) return "an unreadable holder";
  std::string job = holder.value("slurm_job_id", "");
  if (!job.empty() && !holder.value("slurm_restart_count", "").empty())
    job += ", restart " + holder.value("slurm_restart_count", "");
  return fmt::format("host {}, pid {}{}, started {}", holder.value("host", "?"), holder.value("pid", int64_t{0}),
                     job.empty() ? "" : ", Slurm job " + job, holder.value("started", "?"));
}

// Creates the file with its content if absent, in one step (a hard link of a complete temporary file); false if it
// exists.
bool create_exclusive(const std::string& path, const std::string& content) {
  const std::string tmp = fmt::format("{}.{}.{}.tmp", path, host_name(), getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw BadInput(fmt::format("--output_dir: cannot create {} ({}); expected a writable directory", tmp,
                               std::strerror(errno)));
  const bool written = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  const bool synced = fsync(fd) == 0;
  close(fd);
  const int linked = written && synced ? link(tmp.c_str(), path.c_str()) : -1;
  const int saved_errno = errno;
  unlink(tmp.c_str());
  if (linked == 0) return true;
  if (written && synced && saved_errno == EEXIST) return false;
  throw RuntimeFailure(fmt::format("cannot write {}: {}", path, std::strerror(saved_errno)));
}

}  // namespace

RunLock::RunLock(const std::string& output_dir) : path_(output_dir + "/run.lock") {
  const std::string content = this_run().dump() + "\n";
  if (create_exclusive(path_, content)) return;
  const nlohmann::json holder = read_holder(path_);
  const std::string gone = gone_because(holder);
  if (gone.empty())
    throw BadInput(fmt::format("--output_dir = {} is in use by a live run ({}); expected another --output_dir, or "
                               "that run stopped first (a lock left by a crash on another host: remove {})",
                               output_dir, describe(holder), path_));
  spdlog::warn("taking over {} from {}: {}", path_, describe(holder), gone);
  unlink(path_.c_str());
  if (!create_exclusive(path_, content))
    throw BadInput(fmt::format("--output_dir = {}: another run took {} at the same moment; expected one run per "
                               "directory",
                               output_dir, path_));
}

RunLock::~RunLock() { unlink(path_.c_str()); }

}  // namespace llama2
