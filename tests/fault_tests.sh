#!/usr/bin/env bash
# Faults of a running job. Usage: fault_tests.sh CASE BINARY REPO_ROOT [MPIRUN...]
#   nonfinite   a NaN loss → exit 1 naming the step, nothing saved; --skip_nonfinite → skipped, run completes
#   full_disk   a save that hits a file-size limit (as a full disk would) → exit 1; `latest` still loads
#   mpi_error   rank 1 of dp=2 calls dp collective #5 on MPI_COMM_NULL (test hook fail_collective): MPI returns the
#               error instead of aborting with its own message, and the job ends with status 1 in one line naming
#               the rank, the call, the group and MPI's error, without a C++ stack trace
source "$(dirname "$0")/script_lib.sh"
tiny=(train --config "$root/configs/tiny.json" --synthetic_data --seq_len 32 --log_interval 1000)

nonfinite() {
  # Weights of std 1e18 overflow the attention scores to inf: the very first loss is NaN.
  sed 's/"initializer_range": 0.02/"initializer_range": 1e18/' "$root/configs/tiny.json" >"$work/overflow.json"
  local args=(train --config "$work/overflow.json" --synthetic_data --seq_len 16 --max_steps 3)
  "$bin" "${args[@]}" --output_dir "$work/a" >"$work/a.log" 2>&1
  local status=$?
  [[ $status -eq 1 ]] || fail "status $status for a NaN loss, expected 1"
  grep -q "error: step 1: non-finite loss" "$work/a.log" || fail "message does not name step 1: $(tail -2 "$work/a.log")"
  [[ ! -d "$work/a/checkpoints" ]] || fail "a checkpoint was saved after a non-finite step"
  "$bin" "${args[@]}" --output_dir "$work/b" --skip_nonfinite >"$work/b.log" 2>&1 || fail "--skip_nonfinite run failed"
  [[ $(grep -c "step skipped (--skip_nonfinite)" "$work/b.log") -eq 3 ]] || fail "expected 3 skipped steps"
  echo "ok: NaN at step 1 → status 1, nothing saved; --skip_nonfinite → 3 steps skipped, run completed"
}

full_disk() {
  "$bin" "${tiny[@]}" --max_steps 4 --steps_this_run 2 --output_dir "$work/run" >/dev/null 2>&1 || fail "first run"
  local size
  size=$(stat -c %s "$work/run/checkpoints/step-00000002/rank-00000.safetensors")
  # A file-size limit below the checkpoint's size fails the next save's write as a full disk would.
  (ulimit -f $(( size / 1024 / 2 )); "$bin" "${tiny[@]}" --max_steps 4 --output_dir "$work/run" >"$work/log" 2>&1)
  local status=$?
  [[ $status -eq 1 ]] || fail "status $status when the save cannot be written, expected 1"
  grep -q "File too large" "$work/log" || fail "the error does not say why: $(grep error "$work/log")"
  [[ $(cat "$work/run/checkpoints/latest") == step-00000002 ]] || fail "latest moved to $(cat "$work/run/checkpoints/latest")"
  head -c 3000 "$root/configs/llama2-7b.json" >"$work/text.txt"
  "$bin" eval --checkpoint "$work/run/checkpoints" --tokenizer "$root/assets/tokenizer.model" --text "$work/text.txt" \
    --seq_len 16 >/dev/null 2>&1 || fail "the previous checkpoint no longer loads"
  echo "ok: save beyond the file-size limit → status 1 ($(grep -o 'error: .*' "$work/log" | cut -c1-90)...); latest = step-00000002 still loads"
}

mpi_error() {
  LLAMA2_TEST_HOOKS="fail_collective=1:dp:5" "${mpirun[@]}" -np 2 "$bin" "${tiny[@]}" --max_steps 20 \
    --output_dir "$work/run" >"$work/log" 2>&1
  local status=$?
  [[ $status -eq 1 ]] || fail "status $status, expected 1: $(tail -3 "$work/log")"
  grep -q "^error: rank 1: MPI Allreduce on the dp group failed: MPI_ERR_COMM: invalid communicator" "$work/log" ||
    fail "no line naming rank 1 and its collective: $(grep -i error "$work/log" | head -3)"
  ! grep -qE "terminate called|MPI_ERRORS_ARE_FATAL|Backtrace" "$work/log" || fail "$(grep -m1 -E "terminate|FATAL|Backtrace" "$work/log")"
  echo "ok: $(grep -m1 '^error: rank 1' "$work/log")"
}

"$case"
