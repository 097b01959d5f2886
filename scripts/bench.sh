#!/usr/bin/env bash
# Throughput benchmark, all ratios measured in ONE run on this machine:
#   1. the machine's GEMM peaks, fp32 and bf16: oneDNN on the 58M model's own GEMM shapes, all cores (gemm-peak),
#      measured right before and right after every training run: a run's MFU is over the mean of the two around
#      it in the run's precision, so that the shared machine's drift between the peak and the run (±20% here)
#      does not skew the ratio; and the cores' raw instruction peaks (independent 512-bit FMA chains; bf16: AMX
#      tdpbf16ps chains where the CPU has AMX, else vdpbf16ps),
#      every run's MFU over them too. Every row runs ROUNDS times (default 2), the whole list once per round, so each
#      row is interleaved with the rows it is compared with (rows compared by a ratio run back to back: bf16 packed,
#      plain, seq 4096); a row prints its mean and the spread of its rounds;
#   2. training tokens/s and MFU of configs/llama2-58m.json (batch 4, seq 512): 1 rank x all threads and
#      2 ranks x 1 thread at tp=2 (SP on), fp32 and bf16, each averaged over the steps after the first; and bf16
#      with weights packed in oneDNN's layout (--pack_weights on) beside it;
#   3. each run's step time by phase (GEMMs, attention, loss, elementwise, communication, the exposed DP
#      gradient reduction, optimizer, data), and dp=2 (ZeRO-1) with the reduction overlapped and not, and in bf16;
#   4. `plan`'s step-time and peak-RSS predictions for the same layouts, next to the measured values: plan measures
#      its rates right before each run it is compared with, in the same round (the VM's speed swings between minutes);
#   5. the recipe's sequence length: seq 4096, batch 1, 1 rank, fp32 and bf16, with core attention's rate in
#      GFLOP/s (the tiles' FLOPs as plan counts them: forward, and backward with its recompute) beside the
#      GEMM peak, and bf16 tokens/s at 4096 over those at 512 (of the runs' means, and of each run's best steady
#      step: a shared VM's slowdown for a few seconds falls on one run's steps, not on both rows).
#   6. the lm_head + loss phase's rate: the lm_head's FLOPs (forward and both gradients) over the loss phase's time.
# Prints a table and one JSON line (the last line). Usage: scripts/bench.sh [STEPS] [ROUNDS] (default 6, 2).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-6}
rounds=${2:-2}
bin=build/llama2_pretrain
cores=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=scripts/bench_train.sh
source scripts/bench_train.sh  # bench_train, and $config: the model
require_timed_steps "$steps"

measure_peaks() {  # appends the best fp32 and bf16 GFLOP/s over the model's GEMM shapes, and the cores' raw
                  # instruction peaks, now, to $peaks, $peaks_bf16, $raw and $raw_bf16
  "$bin" gemm-peak --config "$config" --batch_size 4 --seq_len 512 --threads "$cores" >"$work/peak.json"
  field() { grep -o "\"$1\": [0-9.]*" "$work/peak.json" | awk '{print $2}'; }
  peaks+=" $(field peak_gflops)" peaks_bf16+=" $(field peak_gflops_bf16)"
  raw+=" $(field instruction_peak_gflops)" raw_bf16+=" $(field instruction_peak_gflops_bf16)"
}
peaks="" peaks_bf16="" raw="" raw_bf16="" order=""
measure_peaks
peak_json=$(cat "$work/peak.json")
echo "GEMM peaks (oneDNN, $cores threads, best of the model's shapes), first measurement: fp32$peaks," \
     "bf16$peaks_bf16 GFLOP/s; raw instruction peaks: fp32$raw, bf16$raw_bf16 GFLOP/s" \
     "($(lscpu | sed -n 's/^Model name: *//p'))"

plan_step() {  # RANKS_PER_NODE PLAN-ARGS... → the estimated step seconds
  local rpn=$1
  shift
  "$bin" plan --config "$config" --batch_size 4 --seq_len 512 --ranks_per_node "$rpn" --remeasure "$@" |
    awk '/^step time estimate/ { print $4 }'
}

run() {  # NAME RANKS THREADS EXTRA... (then the peak once more: this run's is the mean of the two around it);
         # with PLAN="RANKS_PER_NODE PLAN-ARGS...", plan's estimate of the step first, measured just before the run
  local name=$1_$round ranks=$2 threads=$3 seq=${SEQ:-512} batch=${BATCH:-4}
  order+=" $name"
  shift 3
  local per_rank_tflops peak="${peaks##* }"  # for the run's own log lines: the latest peak of its precision
  [[ " $* " == *" --use_mix_precision "* ]] && peak="${peaks_bf16##* }"
  per_rank_tflops=$(awk -v p="$peak" -v r="$ranks" 'BEGIN { printf "%.6f", p / r / 1000 }')
  if [[ -n "${PLAN:-}" ]]; then
    local plan_args
    read -r -a plan_args <<<"$PLAN"
    plan_step "${plan_args[@]}" >"$work/$name.plan"
  fi
  bench_train "$work/$name" "$bin" "$ranks" "$threads" "$seq" "$batch" "$steps" "$per_rank_tflops" "$@"
  measure_peaks
}
for round in $(seq "$rounds"); do
  PLAN="1" run r1_fp32 1 "$cores"
  run r1_bf16_packed 1 "$cores" --use_mix_precision --pack_weights on
  PLAN="1 --use_mix_precision" run r1_bf16 1 "$cores" --use_mix_precision
  SEQ=4096 BATCH=1 run s4096_bf16 1 "$cores" --use_mix_precision  # right after its comparison row
  PLAN="2 --tensor_parallel_size 2" run tp2_fp32 2 1 --tensor_parallel_size 2
  run tp2_bf16 2 1 --tensor_parallel_size 2 --use_mix_precision
  PLAN="2" run dp2_overlap 2 1 --overlap_grad_reduce=true
  run dp2_blocking 2 1 --overlap_grad_reduce=false
  run dp2_bf16 2 1 --use_mix_precision
  SEQ=4096 BATCH=1 run s4096_fp32 1 "$cores"
done

/usr/bin/python3 - "$work" "$peaks" "$cores" "$peak_json" "$peaks_bf16" "$raw" "$raw_bf16" "$order" "$config" <<'PY'
import json, os, statistics, sys
sys.path.insert(0, "scripts")
from bench_results import loss_gflops
work, cores, peak_json = sys.argv[1], int(sys.argv[3]), json.loads(sys.argv[4])
peaks = {"fp32": [float(p) for p in sys.argv[2].split()], "bf16": [float(p) for p in sys.argv[5].split()]}
raw = {"fp32": [float(p) for p in sys.argv[6].split()], "bf16": [float(p) for p in sys.argv[7].split()]}
order = sys.argv[8].split()
names = ("r1_fp32", "r1_bf16", "r1_bf16_packed", "tp2_fp32", "tp2_bf16", "dp2_overlap", "dp2_blocking", "dp2_bf16", "s4096_fp32",
         "s4096_bf16")
config = json.load(open(sys.argv[9]))
rounds = {n: [] for n in names}
for i, run_name in enumerate(order):  # MFU over the mean of its precision's peaks just before and after
    r = json.load(open(os.path.join(work, run_name + ".json")))
    name = run_name.rsplit("_", 1)[0]
    precision = "bf16" if "bf16" in name else "fp32"
    p = peaks[precision]
    r["peak_gflops"] = (p[i] + p[i + 1]) / 2
    r["mfu"] *= p[i] / r["peak_gflops"]  # the run computed it over p[i], the peak it was given
    r["raw_gflops"] = (raw[precision][i] + raw[precision][i + 1]) / 2
    r["mfu_raw"] = r["mfu"] * r["peak_gflops"] / r["raw_gflops"] if r["raw_gflops"] > 0 else 0
    r["loss_gflops"] = loss_gflops(r, config)
    plan_file = os.path.join(work, run_name + ".plan")
    if os.path.exists(plan_file):  # plan's estimate, measured right before this run
        r["plan_step_seconds"] = float(open(plan_file).read())
    with open(os.path.join(work, run_name + ".steps.jsonl")) as lines:  # the best steady step (not the first)
        steps = [json.loads(line) for line in lines]
    r["best_step_tokens_per_s"] = max(step["tokens_per_s"] for step in steps if step["step"] > 1)
    rounds[name].append(r)
plan = {n: statistics.mean(r["plan_step_seconds"] for r in rounds[n])
        for n in names if "plan_step_seconds" in rounds[n][0]}

def mean(name, key):
    return statistics.mean(r[key] for r in rounds[name])

def spread(name, key):
    values = [r[key] for r in rounds[name]]
    return min(values), max(values)

for precision in peaks:
    print("%s GEMM peak measured around the runs: %.1f to %.1f GFLOP/s; raw instruction peak %.1f to %.1f GFLOP/s "
          "(oneDNN's best GEMM at %.0f%% of it)" % (precision, min(peaks[precision]), max(peaks[precision]),
          min(raw[precision]), max(raw[precision]),
          100 * statistics.mean(peaks[precision]) / max(1e-9, statistics.mean(raw[precision]))))
labels = {"r1_fp32": "1 rank x %d threads, fp32" % cores, "r1_bf16": "1 rank x %d threads, bf16" % cores,
          "r1_bf16_packed": "1 rank x %d threads, bf16, packed" % cores,
          "tp2_fp32": "2 ranks x 1 thread, tp=2 SP, fp32", "tp2_bf16": "2 ranks x 1 thread, tp=2 SP, bf16",
          "dp2_overlap": "2 ranks x 1 thread, dp=2, overlapped", "dp2_blocking": "2 ranks x 1 thread, dp=2, blocking",
          "dp2_bf16": "2 ranks x 1 thread, dp=2 ZeRO-1, bf16",
          "s4096_fp32": "seq 4096 x 1, 1 rank x %d threads, fp32" % cores,
          "s4096_bf16": "seq 4096 x 1, 1 rank x %d threads, bf16" % cores}
phases = ["gemm", "attention", "loss", "elementwise", "communication", "grad_reduce", "optimizer", "data"]
print("\nmeans over %d rounds; tokens/s spread = the rounds' lowest and highest" % len(rounds["r1_fp32"]))
print("%-38s %8s %13s %6s %6s %6s %6s %7s %7s %9s %9s %6s  %s" % ("llama2-58m (batch 4, seq 512 unless said)",
      "tokens/s", "spread", "peak", "MFU", "raw", "MFUraw", "step s", "plan s", "peak RSS", "plan RSS", "loss%",
      "  ".join("%-6s" % p[:6] for p in phases)))
for name in names:
    share = {p: statistics.mean(r["phase_seconds_per_step"][p] for r in rounds[name]) for p in phases}
    step = mean(name, "step_seconds")
    lo, hi = spread(name, "tokens_per_s")
    print("%-38s %8.0f %6.0f-%-6.0f %6.0f %5.1f%% %6.0f %5.1f%% %7.3f %7s %5.2f GiB %5.2f GiB %5.0f%%  %s" % (
          labels[name], mean(name, "tokens_per_s"), lo, hi, mean(name, "peak_gflops"), 100 * mean(name, "mfu"),
          mean(name, "raw_gflops"), 100 * mean(name, "mfu_raw"), step,
          "%.3f" % plan[name] if name in plan else "-", max(r["peak_rss_bytes"] for r in rounds[name]) / 2**30,
          mean(name, "planned_rss_bytes") / 2**30, 100 * mean(name, "loss_gflops") / mean(name, "peak_gflops"),
          "  ".join("%5.1f%%" % (100 * share[p] / step) for p in phases)))
runs = {n: {k: (statistics.mean(r[k] for r in rounds[n]) if isinstance(rounds[n][0][k], (int, float)) else
                rounds[n][0][k]) for k in rounds[n][0]} for n in names}
for n in names:
    runs[n]["phase_seconds_per_step"] = {p: statistics.mean(r["phase_seconds_per_step"][p] for r in rounds[n])
                                         for p in rounds[n][0]["phase_seconds_per_step"]}
    runs[n]["peak_rss_bytes"] = max(r["peak_rss_bytes"] for r in rounds[n])
print("\nlm_head + loss phase (its FLOPs over its time), mean over rounds: %s" % ", ".join(
      "%s %.0f GFLOP/s = %.0f%% of the GEMM peak" % (n, runs[n]["loss_gflops"], 100 * runs[n]["loss_gflops"] /
                                                    runs[n]["peak_gflops"]) for n in ("r1_fp32", "r1_bf16")))
ratio = runs["tp2_fp32"]["tokens_per_s"] / runs["r1_fp32"]["tokens_per_s"]
exposed = {n: runs[n]["phase_seconds_per_step"]["grad_reduce"] for n in ("dp2_overlap", "dp2_blocking")}
bf16_ratio = runs["tp2_bf16"]["tokens_per_s"] / runs["r1_bf16"]["tokens_per_s"]
print("tp=2 on 2 ranks / 1 rank: %.1f%% of the tokens/s in fp32, %.1f%% in bf16; bf16 / fp32 on 1 rank: %.2fx the "
      "tokens/s" % (100 * ratio, 100 * bf16_ratio, runs["r1_bf16"]["tokens_per_s"] / runs["r1_fp32"]["tokens_per_s"]))
print("packed / plain weights (--pack_weights on), bf16 on 1 rank: %.2fx the tokens/s" %
      (runs["r1_bf16_packed"]["tokens_per_s"] / runs["r1_bf16"]["tokens_per_s"]))
print("dp=2 exposed gradient reduction per step: %.3f s overlapped vs %.3f s blocking" %
      (exposed["dp2_overlap"], exposed["dp2_blocking"]))
s, h, layers = 4096, config["hidden_size"], config["num_hidden_layers"]
tiles = -(-s // 128)  # kAttentionBlockRows: causal tiles compute (n+1)/2n of the full rows
attention_flops = (tiles + 1) / (2 * tiles) * 4.0 * s * s * h * 3.5 * layers
for name in ("s4096_fp32", "s4096_bf16"):
    r = runs[name]
    r["attention_gflops"] = attention_flops / r["phase_seconds_per_step"]["attention"] / 1e9
    print("%s: core attention %.2f s per step, %.1f GFLOP/s (GEMM peak %.1f)" % (
          labels[name], r["phase_seconds_per_step"]["attention"], r["attention_gflops"], r["peak_gflops"]))
def long_ratio(key):  # bf16 seq 4096 over seq 512 by `key`: of the means over rounds, and each round's
    rows = (rounds["s4096_bf16"], rounds["r1_bf16"])
    return (runs["s4096_bf16"][key] / runs["r1_bf16"][key],
            ", ".join("%.1f%%" % (100 * a[key] / b[key]) for a, b in zip(*rows)))
mean_ratio, best_ratio = long_ratio("tokens_per_s"), long_ratio("best_step_tokens_per_s")
print("bf16 tokens/s at seq 4096 / at seq 512: %.1f%% (rounds: %s); from each run's best steady step: %.1f%% "
      "(rounds: %s)" % (100 * mean_ratio[0], mean_ratio[1], 100 * best_ratio[0], best_ratio[1]))
print("measured / plan (plan measured right before each run): step time %s; peak RSS %s" % (
      ", ".join("%s %.2f (rounds %s)" % (n, runs[n]["step_seconds"] / plan[n], ", ".join(
          "%.2f" % (r["step_seconds"] / r["plan_step_seconds"]) for r in rounds[n])) for n in plan),
      ", ".join("%s %.2f" % (n, r["peak_rss_bytes"] / r["planned_rss_bytes"]) for n, r in runs.items())))
print(json.dumps({"peak_gflops_measured": peaks, "instruction_peak_gflops": raw, "gemm_shapes": peak_json["shapes"],
                  "tp2_over_1rank": ratio, "bf16_seq4096_over_seq512": mean_ratio[0],
                  "bf16_seq4096_over_seq512_best_steps": best_ratio[0],
                  "attention_gflops": {n: runs[n]["attention_gflops"] for n in ("s4096_fp32", "s4096_bf16")},
                  "plan_step_seconds": plan, "exposed_grad_reduce_seconds": exposed,
                  "runs": {n: {k: r[k] for k in ("tokens_per_s", "best_step_tokens_per_s", "peak_gflops", "mfu",
                                                 "raw_gflops", "mfu_raw", "loss_gflops", "step_seconds",
                                                 "peak_rss_bytes", "planned_rss_bytes", "phase_seconds_per_step")}
                           for n, r in runs.items()}}))
PY
