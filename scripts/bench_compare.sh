#!/usr/bin/env bash
# Before/after throughput of two builds of llama2_pretrain on this machine, interleaved: every row runs the OLD
# binary, then the NEW one, and the whole list repeats ROUNDS times, so that the shared VM's swings between minutes
# fall on both alike. Prints per row and build each round's tokens/s, steady step time, lm_head + loss phase rate
# (its forward and gradient FLOPs over the `loss` phase: comparable only between builds that time that phase
# alike) and peak RSS, and NEW/OLD tokens/s per round. Rows: configs/llama2-58m.json (batch 4, seq 512) fp32 and
# bf16 at 1 rank x all threads, bf16 at tp=2 on 2 ranks x 1 thread, and bf16 at seq 4096 (batch 1).
# Usage: scripts/bench_compare.sh OLD_BINARY NEW_BINARY [STEPS] [ROUNDS] (default 6, 3).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 && -x $1 && -x $2 ]] || { echo "usage: $0 OLD_BINARY NEW_BINARY [STEPS] [ROUNDS]" >&2; exit 2; }
old=$1 new=$2 steps=${3:-6} rounds=${4:-3}
cores=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=scripts/bench_train.sh
source scripts/bench_train.sh  # bench_train, and $config: the model
require_timed_steps "$steps"

row() {  # NAME RANKS THREADS SEQ BATCH EXTRA...: OLD, then NEW (--peak_tflops set: no start-up GEMM measurement)
  local name=$1 ranks=$2 threads=$3 seq=$4 batch=$5 build bin
  shift 5
  for build in old new; do
    bin=$old
    [[ $build == new ]] && bin=$new
    bench_train "$work/${name}_${build}_$round" "$bin" "$ranks" "$threads" "$seq" "$batch" "$steps" 1 "$@"
  done
}
for round in $(seq "$rounds"); do
  row r1_fp32 1 "$cores" 512 4
  row r1_bf16 1 "$cores" 512 4 --use_mix_precision
  row tp2_bf16 2 1 512 4 --tensor_parallel_size 2 --use_mix_precision
  row s4096_bf16 1 "$cores" 4096 1 --use_mix_precision
done

/usr/bin/python3 - "$work" "$rounds" "$old" "$new" "$config" <<'PY'
import json, os, sys
sys.path.insert(0, "scripts")
from bench_results import loss_gflops
work, rounds, old, new = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
config = json.load(open(sys.argv[5]))

def results(name, build):
    return [json.load(open(os.path.join(work, "%s_%s_%d.json" % (name, build, r)))) for r in range(1, rounds + 1)]

print("old %s\nnew %s\n%d rounds, each row old then new; values per round" % (old, new, rounds))
print("%-11s %-4s %-22s %-22s %-22s %s" % ("row", "", "tokens/s", "step s", "loss phase GFLOP/s", "peak RSS GiB"))
for name in ("r1_fp32", "r1_bf16", "tp2_bf16", "s4096_bf16"):
    runs = {b: results(name, b) for b in ("old", "new")}
    for build, rs in runs.items():
        print("%-11s %-4s %-22s %-22s %-22s %s" % (name, build, " ".join("%.0f" % r["tokens_per_s"] for r in rs),
              " ".join("%.3f" % r["step_seconds"] for r in rs), " ".join("%.0f" % loss_gflops(r, config) for r in rs),
              " ".join("%.2f" % (r["peak_rss_bytes"] / 2**30) for r in rs)))
    print("%-11s new/old tokens/s per round: %s" % (name, " ".join(
          "%.2f" % (n["tokens_per_s"] / o["tokens_per_s"]) for o, n in zip(runs["old"], runs["new"]))))
PY
