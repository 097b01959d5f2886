# shellcheck shell=bash
# Sourced by the benchmarks. bench_train OUT BINARY RANKS THREADS SEQ BATCH STEPS PEAK_TFLOPS EXTRA...: trains
# $config on synthetic data (no checkpoints) on RANKS local ranks (mpirun, unbound, as root where
# need be) or, for 1, directly; leaves its log in OUT.log and its results.json as OUT.json.
config=configs/llama2-58m.json  # the benchmarks' model
bench_train() {
  local out=$1 bin=$2 ranks=$3 threads=$4 seq=$5 batch=$6 steps=$7 peak=$8 root=()
  shift 8
  local cmd=("$bin" train --config "$config" --synthetic_data --batch_size "$batch" --seq_len "$seq"
             --max_steps "$steps" --warmup_steps 1 --checkpoint_freq 0 --threads "$threads" --peak_tflops "$peak"
             --output_dir "$out" "$@")
  [[ $(id -u) -eq 0 ]] && root=(--allow-run-as-root)
  if (( ranks > 1 )); then
    mpirun -np "$ranks" --oversubscribe --bind-to none "${root[@]}" "${cmd[@]}" >"$out.log" 2>&1
  else
    "${cmd[@]}" >"$out.log" 2>&1
  fi
  cp "$out/results.json" "$out.json"
  rm -rf "$out"
}
