#!/usr/bin/env bash
# The main job on a fresh machine: install, build, fetch the tokenizer and corpus, prepare the corpus,
# then train configs/tiny.json at tp=2 on two MPI ranks with a validation loss. Results: $OUTPUT_DIR
# (default output/tiny-tp2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash scripts/fetch-assets.sh
[[ -f data/sotu/index.json ]] ||
  build/llama2_pretrain prepare-data --tokenizer assets/tokenizer.model --input assets/sotu --output_dir data/sotu
out=${OUTPUT_DIR:-output/tiny-tp2}
rm -rf "$out"
root=()
[[ $(id -u) -eq 0 ]] && root=(--allow-run-as-root)
mpirun -np 2 --oversubscribe --bind-to none "${root[@]}" \
  build/llama2_pretrain train --config configs/tiny.json --tensor_parallel_size 2 \
  --data_dir data/sotu --tokenizer assets/tokenizer.model --batch_size 8 --seq_len 128 \
  --max_steps 300 --warmup_steps 30 --lr 3e-3 --log_interval 25 --eval_interval 100 --eval_iters 8 \
  --sample_interval 100 --sample_prompt "The state of the union" \
  --output_dir "$out"
/usr/bin/python3 scripts/plot_metrics.py "$out" >/dev/null
echo
echo "main job done. Results in $out/:"
echo "  metrics.jsonl        one JSON line per step (loss, val_loss, lr, grad_norm, tokens/s, MFU, peak RSS)"
echo "  metrics.png          loss, learning rate, gradient norm and tokens/s"
echo "  tensorboard/         TensorBoard event files (tensorboard --logdir $out/tensorboard)"
echo "  results.json         final loss, throughput, steps, time"
echo "  checkpoints/latest → $(cat "$out/checkpoints/latest")   (export with: build/llama2_pretrain export-hf --checkpoint $out/checkpoints --output hf-tiny)"
