// llama2_pretrain: entry point. Everything happens in run_cli (src/cli/cli.cpp), after the heap's set-up.
#include <csignal>

#include "llama2/cli/cli.h"
#include "llama2/util/heap.h"

// Before any library initialiser runs (libtorch's take ~0.5 s): where the program re-executes itself for huge
// pages, it does so before paying for them.
__attribute__((section(".preinit_array"), used)) static void (*const restart_for_huge_pages)(int, char**, char**) =
    llama2::restart_with_huge_pages;

int main(int argc, char** argv) {
  llama2::keep_freed_memory();
  // A file-size limit (ulimit -f) or full disk must fail a write with an error we report, not kill us.
  std::signal(SIGXFSZ, SIG_IGN);
  return llama2::run_cli(argc, argv);
}
