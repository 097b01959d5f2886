#!/usr/bin/env bash
# Throughput benchmark, all ratios measured in ONE run on this machine:
#   1. the machine's fp32 GEMM peak: oneDNN on the 58M model's own GEMM shapes, all cores (gemm-peak);
#   2. training tokens/s and MFU of configs/llama2-58m.json (batch 4, seq 512): 1 rank x all threads and
#      2 ranks x 1 thread at tp=2 (SP on), fp32 and bf16, each averaged over the steps after the first;
#   3. each run's step time by phase (GEMMs, attention, loss, elementwise, communication, optimizer, data).
# Prints a table and one JSON line (the last line). Usage: scripts/bench.sh [STEPS] (default 6).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-6}
bin=build/llama2_pretrain
config=configs/llama2-58m.json
cores=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=()
[[ $(id -u) -eq 0 ]] && root=(--allow-run-as-root)

peak_json=$("$bin" gemm-peak --config "$config" --batch_size 4 --seq_len 512 --threads "$cores")
peak=$(grep -o '"peak_gflops": [0-9.]*' <<<"$peak_json" | awk '{print $2}')
echo "fp32 GEMM peak (oneDNN, $cores threads, best of the model's shapes): $peak GFLOP/s"

run() {  # NAME RANKS THREADS EXTRA...
  local name=$1 ranks=$2 threads=$3
  shift 3
  local per_rank_tflops
  per_rank_tflops=$(awk -v p="$peak" -v r="$ranks" 'BEGIN { printf "%.6f", p / r / 1000 }')
  local cmd=("$bin" train --config "$config" --synthetic_data --batch_size 4 --seq_len 512 --max_steps "$steps"
             --warmup_steps 1 --checkpoint_freq 0 --threads "$threads" --peak_tflops "$per_rank_tflops"
             --output_dir "$work/$name" "$@")
  if (( ranks > 1 )); then
    mpirun -np "$ranks" --oversubscribe --bind-to none "${root[@]}" "${cmd[@]}" >"$work/$name.log" 2>&1
  else
    "${cmd[@]}" >"$work/$name.log" 2>&1
  fi
  cp "$work/$name/results.json" "$work/$name.json"
  rm -rf "$work/$name"
}
run r1_fp32 1 "$cores"
run r1_bf16 1 "$cores" --use_mix_precision
run tp2_fp32 2 1 --tensor_parallel_size 2
run tp2_bf16 2 1 --tensor_parallel_size 2 --use_mix_precision

/usr/bin/python3 - "$work" "$peak" "$cores" "$peak_json" <<'PY'
import json, os, sys
work, peak, cores, peak_json = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
runs = {n: json.load(open(os.path.join(work, n + ".json"))) for n in ("r1_fp32", "r1_bf16", "tp2_fp32", "tp2_bf16")}
labels = {"r1_fp32": "1 rank x %d threads, fp32" % cores, "r1_bf16": "1 rank x %d threads, bf16" % cores,
          "tp2_fp32": "2 ranks x 1 thread, tp=2 SP, fp32", "tp2_bf16": "2 ranks x 1 thread, tp=2 SP, bf16"}
phases = ["gemm", "attention", "loss", "elementwise", "communication", "optimizer", "data"]
print("\n%-36s %9s %7s %9s %10s  %s" % ("llama2-58m, batch 4, seq 512", "tokens/s", "MFU", "step s", "peak RSS", "  ".join("%-6s" % p[:6] for p in phases)))
for name, r in runs.items():
    share = r["phase_seconds_per_step"]
    print("%-36s %9.0f %6.1f%% %9.3f %8.2f GiB  %s" % (labels[name], r["tokens_per_s"], 100 * r["mfu"], r["step_seconds"],
          r["peak_rss_bytes"] / 2**30, "  ".join("%5.1f%%" % (100 * share[p] / r["step_seconds"]) for p in phases)))
ratio = runs["tp2_fp32"]["tokens_per_s"] / runs["r1_fp32"]["tokens_per_s"]
print("\ntp=2 on 2 ranks / 1 rank (fp32): %.1f%% of the tokens/s; bf16 / fp32 on 1 rank: %.2fx the step time" %
      (100 * ratio, runs["r1_bf16"]["step_seconds"] / runs["r1_fp32"]["step_seconds"]))
print(json.dumps({"machine_peak_gflops": peak, "gemm_shapes": peak_json["shapes"], "tp2_over_1rank": ratio,
                  "runs": {n: {k: r[k] for k in ("tokens_per_s", "mfu", "step_seconds", "peak_rss_bytes", "phase_seconds_per_step")}
                           for n, r in runs.items()}}))
PY
