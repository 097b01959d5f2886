#!/usr/bin/env bash
# The main job on a fresh machine: install, build, then a tp=2 training run on two MPI ranks.
# Results go to $OUTPUT_DIR (default output/tiny-tp2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
out=${OUTPUT_DIR:-output/tiny-tp2}
rm -rf "$out"
root=()
[[ $(id -u) -eq 0 ]] && root=(--allow-run-as-root)
mpirun -np 2 --oversubscribe --bind-to none "${root[@]}" \
  build/llama2_pretrain train --config configs/tiny.json --tensor_parallel_size 2 --synthetic_data \
  --batch_size 8 --seq_len 128 --max_steps 200 --warmup_steps 20 --lr 3e-3 --log_interval 20 --output_dir "$out"
echo "main job done: per-step metrics in $out/metrics.jsonl"
