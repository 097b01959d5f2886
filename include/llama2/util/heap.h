// Owns how this process's heap is set up: freed blocks kept for the next step instead of handed back to the kernel,
// and transparent huge pages for it (glibc's malloc tunable, read only at a process's start), and what it became.
#pragma once
#include <string>

namespace llama2 {

// Run from the executable's .preinit_array, before any library initialiser: where the kernel gives transparent
// huge pages on request (`madvise` mode) and GLIBC_TUNABLES does not set glibc.malloc.hugetlb, re-executes this
// program (/proc/self/exe, same pid, argv and environment) with glibc.malloc.hugetlb=1 added to GLIBC_TUNABLES, so
// that malloc asks for huge pages on the memory it maps. Returns where it does not re-execute (or cannot).
void restart_with_huge_pages(int argc, char** argv, char** envp);

// mallopt: blocks up to 32 MiB from the heap, which is never trimmed and grows 1 GiB at a time.
void keep_freed_memory();

// "1.83 GiB resident, 1.69 GiB of it in transparent huge pages (kernel mode 'madvise'; GLIBC_TUNABLES
// glibc.malloc.hugetlb=1)", from /proc/self/smaps_rollup, the kernel's mode and the environment; "" where /proc has
// no smaps_rollup.
std::string heap_summary();

}  // namespace llama2
