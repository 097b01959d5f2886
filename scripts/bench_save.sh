#!/usr/bin/env bash
# Checkpoint save cost, synchronous vs asynchronous, measured in one run on this machine: CONFIG (default the 58M
# model) on 1 rank in bf16, batch 4 x SEQ tokens, STEPS steps with a save every 5 (long enough for a write to end
# before the next save, which would otherwise wait for it), --async_save=false and =true run
# alternately ROUNDS times. Per save: the stall (how long training was held: the synchronous save, or the
# asynchronous copy plus any wait of the next optimizer step for a write of the live state) and the total (until the
# checkpoint was published). Prints one line per run, the medians, their ratio, and one JSON line (the last).
# The first asynchronous save of a run allocates its copy buffers; it is reported but left out of the medians.
# Usage: scripts/bench_save.sh [CONFIG] [SEQ] [STEPS] [ROUNDS]   (defaults: configs/llama2-58m.json 512 20 2)
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/llama2-58m.json} seq=${2:-512} steps=${3:-20} rounds=${4:-2}
bin=build/llama2_pretrain
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sync_stalls=() async_stalls=() async_totals=()
for round in $(seq "$rounds"); do
  for mode in false true; do
    rm -rf "$work/run"
    "$bin" train --config "$config" --synthetic_data --use_mix_precision --batch_size 4 --seq_len "$seq" \
      --warmup_steps 1 --max_steps "$steps" --checkpoint_freq 5 --keep_last 1 --async_save="$mode" \
      --output_dir "$work/run" >"$work/log" 2>&1 || { tail -3 "$work/log"; exit 1; }
    if [[ $mode == false ]]; then
      mapfile -t stalls < <(grep -o 'saved in [0-9.]* s' "$work/log" | awk '{ print $3 }')
      sync_stalls+=("${stalls[@]}")
      echo "round $round synchronous:  stall = total: ${stalls[*]} s"
    else
      # stall per save: the copy, plus the next optimizer step's wait where the write reads the live state
      mapfile -t stalls < <(awk '/training held/ { match($0, /held [0-9.]+/); n++; s[n] = substr($0, RSTART + 5, RLENGTH - 5) }
                                 /optimizer step waited/ { match($0, /waited [0-9.]+/); s[n] += substr($0, RSTART + 7, RLENGTH - 7) }
                                 END { for (i = 1; i <= n; i++) print s[i] }' "$work/log")
      mapfile -t totals < <(grep -o 'published [0-9.]* s after' "$work/log" | awk '{ print $2 }')
      async_stalls+=("${stalls[@]:1}")
      async_totals+=("${totals[@]:1}")
      echo "round $round asynchronous: stall ${stalls[*]} s (first: allocates the copy), published after ${totals[*]} s"
    fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
s_sync=$(median "${sync_stalls[@]}") s_async=$(median "${async_stalls[@]}") t_async=$(median "${async_totals[@]}")
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo "medians: synchronous stall $s_sync s; asynchronous stall $s_async s ($(awk -v a="$s_async" -v b="$s_sync" 'BEGIN { printf "%.1f", 100 * a / b }')% of it), published after $t_async s ($cpu)"
printf '{"config": "%s", "seq_len": %d, "sync_stall_s": %s, "async_stall_s": %s, "async_total_s": %s, "cpu": "%s"}\n' \
  "$config" "$seq" "$s_sync" "$s_async" "$t_async" "$cpu"
