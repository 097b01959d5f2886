// llama2_pretrain: entry point. Everything happens in run_cli (src/cli/cli.cpp).
#include <malloc.h>

#include <climits>
#include <csignal>

#include "llama2/cli/cli.h"

int main(int argc, char** argv) {
  // Every step allocates and frees the same large activation tensors. glibc would hand blocks above
  // 32 MiB back to the kernel (mmap/munmap) and trim the heap after each free, so every step re-faults
  // the same pages (measured: 2.2M minor faults and ~20% of the 58M model's step time). Keep them.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);   // glibc's maximum: larger blocks are still mmapped
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
  mallopt(M_TOP_PAD, 1 << 30);
  // A file-size limit (ulimit -f) or full disk must fail a write with an error we report, not kill us.
  std::signal(SIGXFSZ, SIG_IGN);
  return llama2::run_cli(argc, argv);
}
