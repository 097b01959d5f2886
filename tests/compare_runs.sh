#!/usr/bin/env bash
# Runs two training commands (each gets its own --output_dir) and compares their metrics.jsonl losses
# step by step: |a − b| ≤ RTOL·|b| for every step, printing the worst ratio.
# Usage: compare_runs.sh RTOL COMMAND_A... -- COMMAND_B...
set -u
rtol=$1
shift
a=() b=()
while [[ $# -gt 0 && "$1" != "--" ]]; do a+=("$1"); shift; done
shift
b=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${a[@]}" --output_dir "$work/a" >"$work/a.log" 2>&1 || { echo "run A failed:"; tail -20 "$work/a.log"; exit 1; }
"${b[@]}" --output_dir "$work/b" >"$work/b.log" 2>&1 || { echo "run B failed:"; tail -20 "$work/b.log"; exit 1; }
losses() { grep -o '"loss":[^,}]*' "$1" | cut -d: -f2; }
paste <(losses "$work/a/metrics.jsonl") <(losses "$work/b/metrics.jsonl") | awk -v rtol="$rtol" '
  { n++; d = $1 - $2; if (d < 0) d = -d; r = d / ($2 < 0 ? -$2 : $2); if (r > worst) { worst = r; at = n }
    if (r > rtol) { bad++; printf "step %d: %s vs %s (relative difference %.3g > %g)\n", n, $1, $2, r, rtol } }
  END { printf "%d steps compared, worst relative difference %.3g at step %d (tolerance %g)\n", n, worst, at, rtol;
        exit (n == 0 || bad > 0) }'
