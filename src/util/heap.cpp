// The heap's set-up: kept blocks (mallopt) and transparent huge pages (a re-execution with glibc's tunable).
#include "llama2/util/heap.h"

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "llama2/util/human_units.h"

namespace llama2 {
namespace {

constexpr char kModeFile[] = "/sys/kernel/mm/transparent_hugepage/enabled";  // "always [madvise] never"
constexpr char kTunables[] = "GLIBC_TUNABLES=", kHugePages[] = "glibc.malloc.hugetlb=1";

// The kernel's transparent huge page mode, the bracketed word of kModeFile, into mode ("" if unreadable). System
// calls and C strings only: this runs before the C++ runtime is initialised.
void read_huge_page_mode(char (&mode)[32]) {
  char text[128] = {};
  mode[0] = '\0';
  const int fd = open(kModeFile, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  const ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  const char* from = n > 0 ? std::strchr(text, '[') : nullptr;
  const char* to = from ? std::strchr(from, ']') : nullptr;
  if (to != nullptr && to - from - 1 < static_cast<ssize_t>(sizeof mode))
    std::snprintf(mode, sizeof mode, "%.*s", static_cast<int>(to - from - 1), from + 1);
}

}  // namespace

void restart_with_huge_pages(int /*argc*/, char** argv, char** envp) {
  int count = 0, tunables = -1;
  for (; envp[count] != nullptr; ++count) {
    if (std::strncmp(envp[count], kTunables, sizeof kTunables - 1) != 0) continue;
    if (std::strstr(envp[count], "glibc.malloc.hugetlb") != nullptr) return;  // set: by us before, or by the user
    tunables = count;
  }
  char mode[32];
  read_huge_page_mode(mode);
  if (std::strcmp(mode, "madvise") != 0) return;  // "always": huge pages already; "never": none to have
  // The environment with GLIBC_TUNABLES extended (or added); environ is not set up yet, hence envp.
  char** env = static_cast<char**>(std::calloc(static_cast<size_t>(count) + 2, sizeof(char*)));
  const size_t length = (tunables >= 0 ? std::strlen(envp[tunables]) + 1 : sizeof kTunables - 1) + sizeof kHugePages;
  char* entry = static_cast<char*>(std::malloc(length));
  if (env != nullptr && entry != nullptr) {
    std::memcpy(env, envp, static_cast<size_t>(count) * sizeof(char*));
    const char* before = tunables >= 0 ? envp[tunables] : kTunables;  // "GLIBC_TUNABLES=" and what the user set
    std::snprintf(entry, length, "%s%s%s", before, std::strlen(before) > sizeof kTunables - 1 ? ":" : "", kHugePages);
    env[tunables >= 0 ? tunables : count] = entry;
    execve("/proc/self/exe", argv, env);  // returns only on failure: carry on without
  }
  std::free(entry);
  std::free(env);
}

void keep_freed_memory() {
  // Every step allocates and frees the same large activation tensors. glibc would hand blocks above 32 MiB back to
  // the kernel (mmap/munmap) and trim the heap after each free, so every step re-faults the same pages (measured:
  // 2.2M minor faults and ~20% of the 58M model's step time). Keep them.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum: larger blocks are still mmapped
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
  mallopt(M_TOP_PAD, 1 << 30);
}

std::string heap_summary() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string line;
  long long rss_kb = -1, huge_kb = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key;
    long long kb = 0;
    fields >> key >> kb;
    if (key == "Rss:") rss_kb = kb;
    if (key == "AnonHugePages:") huge_kb = kb;
  }
  if (rss_kb < 0) return "";
  char mode[32];
  read_huge_page_mode(mode);
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  return fmt::format("{} resident, {} of it in transparent huge pages (kernel mode '{}'; GLIBC_TUNABLES {})",
                     format_bytes(rss_kb << 10), format_bytes(huge_kb << 10), mode[0] ? mode : "unknown",
                     tunables ? tunables : "unset");
}

}  // namespace llama2
