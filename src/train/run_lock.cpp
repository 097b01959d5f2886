// run.lock: created with O_EXCL (atomic on NFS v3+ and Lustre, unlike flock), its holder described in JSON.
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
#include "llama2/util/file_io.h"

namespace llama2 {
namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

std::string host_name() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
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

// Why the holder is gone ("" while it may be alive): its pid ended on this host, or it is this Slurm job
// before a requeue. A holder on another host is taken as alive: its pid cannot be checked from here.
std::string gone_because(const nlohmann::json& holder) {
  if (!holder.is_object()) return "it is unreadable (its holder died while writing it)";
  const std::string job = holder.value("slurm_job_id", "");
  if (!job.empty() && job == env("SLURM_JOB_ID")) return "it is this Slurm job's, from before a requeue";
  const int64_t pid = holder.value("pid", int64_t{0});
  if (holder.value("host", "") == host_name() && pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
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

// Creates the file if absent; false if it exists.
bool create_exclusive(const std::string& path, const std::string& content) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    throw BadInput(fmt::format("--output_dir: cannot create {} ({}); expected a writable directory", path,
                               std::strerror(errno)));
  }
  const bool written = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  const bool synced = fsync(fd) == 0;
  close(fd);
  if (!written || !synced) {
    unlink(path.c_str());
    throw RuntimeFailure(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  }
  return true;
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
