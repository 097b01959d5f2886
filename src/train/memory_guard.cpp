// The memory guard: what this node and process can give, read from /proc, cgroup files and rlimits.
#include "llama2/train/memory_guard.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include <fmt/format.h>

#include "llama2/plan/plan.h"
#include "llama2/util/human_units.h"
#include "llama2/util/errors.h"
#include "llama2/util/test_hooks.h"

namespace llama2 {
namespace {

struct Limit {
  int64_t bytes;
  std::string source;
};

// The first number in `path` (bytes), or -1 if the file is absent or says "max".
int64_t read_bytes(const std::string& path) {
  std::ifstream in(path);
  int64_t value = -1;
  return in >> value ? value : -1;
}

int64_t meminfo_bytes(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1)) * 1024;
  return -1;
}

int64_t resident_bytes() {
  std::ifstream in("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// This process's cgroup's memory limit minus its usage (v2 "0::/path", else v1's memory controller).
Limit cgroup_headroom() {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    const std::string controllers = line.substr(first + 1, second - first - 1), path = line.substr(second + 1);
    std::string limit_file, usage_file;
    if (controllers.empty()) {
      limit_file = "/sys/fs/cgroup" + path + "/memory.max";
      usage_file = "/sys/fs/cgroup" + path + "/memory.current";
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {
      limit_file = "/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes";
      usage_file = "/sys/fs/cgroup/memory" + path + "/memory.usage_in_bytes";
    } else {
      continue;
    }
    const int64_t limit = read_bytes(limit_file), usage = read_bytes(usage_file);
    if (limit > 0 && limit < (int64_t{1} << 60) && usage >= 0)
      return {limit - usage, "the cgroup limit (" + limit_file + ")"};
  }
  return {-1, ""};
}

// The node's binding limit for all its ranks, and this process's own.
Limit node_limit() {
  const double hooked_gib = test_hooks().mem_available_gib;
  Limit best = hooked_gib > 0 ? Limit{static_cast<int64_t>(hooked_gib * 1073741824.0), "MemAvailable (test hook)"}
                              : Limit{meminfo_bytes("MemAvailable"), "MemAvailable"};
  const Limit cgroup = cgroup_headroom();
  if (cgroup.bytes >= 0 && (best.bytes < 0 || cgroup.bytes < best.bytes)) best = cgroup;
  return best;
}

Limit process_limit() {
  Limit best{-1, ""};
  for (const auto& [resource, name] : {std::pair{RLIMIT_AS, "RLIMIT_AS (ulimit -v)"}, {RLIMIT_DATA, "RLIMIT_DATA"}}) {
    rlimit r{};
    if (getrlimit(resource, &r) == 0 && r.rlim_cur != RLIM_INFINITY &&
        (best.bytes < 0 || static_cast<int64_t>(r.rlim_cur) < best.bytes))
      best = {static_cast<int64_t>(r.rlim_cur), name};
  }
  return best;
}

}  // namespace

std::string memory_overflow(const MemoryPlan& m, int local_ranks) {
  const int64_t per_rank = m.total(), resident = resident_bytes();
  // The prediction includes the runtime these ranks already hold: count it as available.
  Limit node = node_limit();
  if (node.bytes >= 0) node.bytes += resident * local_ranks;
  const Limit process = process_limit();
  std::string over;
  if (node.bytes >= 0 && per_rank * local_ranks > node.bytes)
    over = fmt::format("{} {} on this node x {} = {} predicted, {} available ({})", local_ranks,
                       local_ranks == 1 ? "rank" : "ranks", format_bytes(per_rank),
                       format_bytes(per_rank * local_ranks), format_bytes(node.bytes), node.source);
  else if (process.bytes >= 0 && per_rank > process.bytes)
    over = fmt::format("{} predicted per rank, {} allowed by {}", format_bytes(per_rank), format_bytes(process.bytes),
                       process.source);
  return over;
}

void check_memory_fits(const MemoryPlan& m, int local_ranks) {
  const std::string over = memory_overflow(m, local_ranks);
  if (over.empty()) return;
  const bool packed = m.packed_bytes > 0;  // the packed copies are named only where --pack_weights made them
  throw BadInput(fmt::format(
      "this layout does not fit in memory: {} (weights {}{}, gradients {}, optimizer state {}, activations {}, "
      "loss {}); what shrinks it: more --tensor_parallel_size (all but the optimizer state / tp), more data-parallel "
      "ranks with --use_zero_1 (optimizer state / dp), --use_mix_precision (weights and gradients / 2),{} a smaller "
      "--batch_size or --seq_len (activations); --skip_memory_check tries anyway",
      over, format_bytes(m.weight_bytes), packed ? ", packed weights " + format_bytes(m.packed_bytes) : "",
      format_bytes(m.grad_bytes), format_bytes(m.optimizer_bytes), format_bytes(m.activation_bytes),
      format_bytes(m.loss_bytes), packed ? " --pack_weights off," : ""));
}

}  // namespace llama2
