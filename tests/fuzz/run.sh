#!/usr/bin/env bash
# Runs each libFuzzer target: first over its regression inputs (every input a fuzz run once crashed on,
# now fixed), then for a bounded time from its seed corpus. Prints executions per target.
# Usage: tests/fuzz/run.sh BUILD_DIR [SECONDS_PER_TARGET (default 60)]
set -euo pipefail
build=$1
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$build/fuzz-artifacts"
summary=()
for name in config data_shard safetensors checkpoint; do
  bin=$build/fuzz_$name
  regressions=$here/regressions/$name
  if compgen -G "$regressions/*" > /dev/null; then
    "$bin" -runs=1 "$regressions"/* > "$work/$name.regressions.log" 2>&1 || {
      cat "$work/$name.regressions.log"; echo "fuzz_$name: a regression input fails again"; exit 1; }
  fi
  mkdir -p "$work/$name"
  cp "$here/corpus/$name"/* "$work/$name/"
  compgen -G "$regressions/*" > /dev/null && cp "$regressions"/* "$work/$name/"
  # -timeout: one input may take 10 s; -rss_limit_mb: a reader must not allocate what the file does not hold.
  if ! "$bin" "$work/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
       -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$name-" > "$work/$name.log" 2>&1; then
    tail -60 "$work/$name.log"
    echo "fuzz_$name: found a failing input; it is in $build/fuzz-artifacts/"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$name.log" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "$work/$name.log" | tail -1)
  summary+=("fuzz_$name: $runs executions in ${seconds} s, $cov, corpus $(ls "$work/$name" | wc -l) inputs")
done
printf '%s\n' "${summary[@]}"
