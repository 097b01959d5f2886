#!/usr/bin/env bash
# Transparent huge pages for the heap, where the kernel gives them on request (`madvise`; skipped, status 77,
# elsewhere): a 2-rank run re-executes itself with glibc.malloc.hugetlb=1 and reports a non-zero part of its heap in
# huge pages; another tunable the user set is kept beside it; glibc.malloc.hugetlb=0 set by the user is respected
# (no huge pages).
# Usage: heap_test.sh CASE BINARY REPO_ROOT MPIRUN... (CASE unused)
source "$(dirname "$0")/script_lib.sh"
grep -q '\[madvise\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || { echo "skip: THP not in madvise mode"; exit 77; }
heap_line() {  # TUNABLES (unset when "unset") → the run's "heap:" line (rank 0's)
  rm -rf "$work/run"
  if [[ $1 == unset ]]; then unset GLIBC_TUNABLES; else export GLIBC_TUNABLES=$1; fi
  "${mpirun[@]}" -np 2 "$bin" train --config "$root/configs/tiny.json" \
    --synthetic_data --seq_len 32 --max_steps 2 --tensor_parallel_size 2 --output_dir "$work/run" >"$work/log" 2>&1 ||
    fail "run with GLIBC_TUNABLES=$1: $(tail -3 "$work/log")"
  grep -o 'heap: .*' "$work/log" || fail "no heap line"
}
huge='resident, ([1-9][0-9.]*|0\.[0-9]*[1-9][0-9]*) (MiB|GiB) of it in transparent huge pages'
line=$(heap_line unset)
[[ $line =~ $huge && $line == *"GLIBC_TUNABLES glibc.malloc.hugetlb=1)"* ]] || fail "no huge pages by default: $line"
line=$(heap_line "")
[[ $line =~ $huge && $line == *"GLIBC_TUNABLES glibc.malloc.hugetlb=1)"* ]] || fail "set but empty: $line"
line=$(heap_line "glibc.malloc.check=0")
[[ $line =~ $huge && $line == *"GLIBC_TUNABLES glibc.malloc.check=0:glibc.malloc.hugetlb=1)"* ]] ||
  fail "another tunable: $line"
line=$(heap_line "glibc.malloc.hugetlb=0")
[[ $line == *" 0.0 MiB of it in transparent huge pages"*"GLIBC_TUNABLES glibc.malloc.hugetlb=0)" ]] ||
  fail "the user's hugetlb=0 not respected: $line"
echo "ok"
