# shellcheck shell=bash
# Sourced by the benchmarks: require_timed_steps STEPS (exit 2 unless at least 2), and bench_train OUT BINARY RANKS
# THREADS SEQ BATCH STEPS PEAK_TFLOPS EXTRA...: trains $config on synthetic data (no checkpoints) on RANKS local
# ranks (mpirun, unbound, as root where need be) or, for 1, directly; leaves its log in OUT.log, its results.json
# as OUT.json and its per-step metrics as OUT.steps.jsonl; a failed run's command and the end of its log go to
# stderr, and it returns 1.
config=configs/llama2-58m.json  # the benchmarks' model
# STEPS must leave a timed step: a run's first step (start-up) is not in its step time or phases.
require_timed_steps() {
  [[ $1 =~ ^[0-9]+$ ]] && (( $1 >= 2 )) && return 0
  echo "error: STEPS = $1: expected an integer of at least 2 (a run's first step is not timed)" >&2
  exit 2
}
bench_train() {
  local out=$1 bin=$2 ranks=$3 threads=$4 seq=$5 batch=$6 steps=$7 peak=$8 root=()
  shift 8
  local cmd=("$bin" train --config "$config" --synthetic_data --batch_size "$batch" --seq_len "$seq"
             --max_steps "$steps" --warmup_steps 1 --checkpoint_freq 0 --threads "$threads" --peak_tflops "$peak"
             --output_dir "$out" "$@")
  [[ $(id -u) -eq 0 ]] && root=(--allow-run-as-root)
  (( ranks > 1 )) && cmd=(mpirun -np "$ranks" --oversubscribe --bind-to none "${root[@]}" "${cmd[@]}")
  if ! "${cmd[@]}" >"$out.log" 2>&1; then  # the caller's work directory goes with it: show why here
    echo "bench: this run failed: ${cmd[*]}" >&2
    tail -20 "$out.log" >&2
    return 1
  fi
  cp "$out/results.json" "$out.json"
  cp "$out/metrics.jsonl" "$out.steps.jsonl"
  rm -rf "$out"
}
