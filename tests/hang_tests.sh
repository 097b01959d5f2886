#!/usr/bin/env bash
# The hang watchdog on real jobs. Usage: hang_tests.sh CASE BINARY REPO MPIRUN...
#   stop_tp:           SIGSTOP rank 1 of a tp=2 job with --collective_timeout 3: rank 0 warns at a tenth naming rank 1,
#                      and the job ends with status 4 within the timeout plus 10 s, the error line naming rank 1;
#   stop_dp:           the same at dp=2 with the overlapped (non-blocking) gradient reduction;
#   stalled_checkpoint: a checkpoint write that blocks forever (the `latest` pointer's temporary file is a FIFO nobody
#                      reads, as a hung filesystem would block it) ends the job through the progress watchdog: status
#                      4 within 3 × --collective_timeout plus 10 s, naming the step and the checkpoint save (step 5's,
#                      or step 10's, which waits for it: the save is asynchronous).
source "$(dirname "$0")/script_lib.sh"
tiny=(train --config "$root/configs/tiny.json" --synthetic_data --seq_len 32 --batch_size 2 --max_steps 1000000
      --log_interval 1000 --output_dir "$work/run")
timeout_s=3

# The pid of the job's rank 1, once the job has run a few steps.
rank1_pid() {
  for _ in $(seq 300); do
    if [[ -s "$work/run/metrics.jsonl" ]] && (( $(wc -l <"$work/run/metrics.jsonl") >= 20 )); then
      for pid in $(pgrep -f "$bin train"); do
        tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && { echo "$pid"; return; }
      done
    fi
    sleep 0.1
  done
  fail "no rank 1 after 30 s: $(tail -3 "$work/run.log")"
}

# Runs the job with the extra flags, stops its rank 1, and checks how the job ends.
stop_rank1() {
  "${mpirun[@]}" -np 2 "$bin" "${tiny[@]}" --collective_timeout $timeout_s "$@" >"$work/run.log" 2>&1 &
  local job=$! pid
  pid=$(rank1_pid)
  local start
  start=$(date +%s%N)
  kill -STOP "$pid"
  wait $job
  local status=$? elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  kill -KILL "$pid" 2>/dev/null
  [[ $status -eq 4 ]] || fail "status $status, expected 4: $(tail -5 "$work/run.log")"
  (( elapsed_ms < (timeout_s + 10) * 1000 )) || fail "the job ended $elapsed_ms ms after the stop"
  grep -q "warning.*rank 0: waiting .* rank 1 (host [^)]*) \(has not joined it\|joined it but has not finished\)" "$work/run.log" ||
    fail "no early warning naming rank 1: $(tail -5 "$work/run.log")"
  grep -q "^error: rank 0: waiting .* rank 1 (host [^)]*) \(has not joined it\|joined it but has not finished\).*exit status 4" \
    "$work/run.log" || fail "no error line naming rank 1: $(tail -5 "$work/run.log")"
  echo "ok: ended $elapsed_ms ms after the stop: $(grep -o '^error: rank 0.*' "$work/run.log" | cut -c1-300)"
}

stop_tp() { stop_rank1 --tensor_parallel_size 2; }
stop_dp() { stop_rank1 --tensor_parallel_size 1 --grad_accum_usteps 2 --overlap_grad_reduce; }

stalled_checkpoint() {
  mkdir -p "$work/run/checkpoints"
  mkfifo "$work/run/checkpoints/latest.tmp"
  local start status elapsed_ms
  start=$(date +%s%N)
  "$bin" "${tiny[@]}" --checkpoint_freq 5 --collective_timeout 1 >"$work/run.log" 2>&1
  status=$? elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  [[ $status -eq 4 ]] || fail "status $status, expected 4: $(tail -5 "$work/run.log")"
  # Step 5's save hangs in the background; the training stalls at it, or at step 10's save that waits for it.
  grep -qE "^error: rank 0: no progress for [0-9.]* s at step (5|10), checkpoint save .*exit status 4" "$work/run.log" ||
    fail "no progress-watchdog line naming step 5's or 10's checkpoint save: $(tail -5 "$work/run.log")"
  (( elapsed_ms < (3 * 1 + 20) * 1000 )) || fail "the job ended $elapsed_ms ms after its start"
  echo "ok: ended $elapsed_ms ms after the start: $(grep -o '^error: .*' "$work/run.log" | cut -c1-300)"
}

"$case"
