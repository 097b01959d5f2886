#!/usr/bin/env bash
# The run-directory lock and the memory guard, on real runs of the binary. Usage: guard_tests.sh CASE BINARY REPO
#   lock_concurrent: a second run on a live run's --output_dir exits 2 within seconds naming the first (host, pid),
#                    touching nothing; the first finishes with every step once in metrics.jsonl and a checkpoint
#                    that resumes;
#   lock_stale:      a lock whose pid is gone (this host) is taken over with a warning, and the run completes;
#   memory_7b:       the 7B config on one rank of this machine is refused with status 2 before allocating;
#   memory_rlimit:   a lowered RLIMIT_AS (ulimit -v 3.8 GiB: the runtime starts) below the predicted peak of the 58M
#                    model at batch 8 x 2048 tokens (6.2 GiB) is refused, status 2;
#   async_fallback:  the 58M model at batch 1 x 128 (1.86 GiB predicted with the 0.65 GiB copy an asynchronous save
#                    keeps, 1.21 GiB without) on a node whose MemAvailable reads 1.4 GiB (test hook): a warning, the
#                    saves written from the live state with step 3's optimizer step waiting for step 2's write (the
#                    writes slowed by 1 s), both checkpoints bitwise those of synchronous saves; at 0.5 GiB it does
#                    not fit at all: status 2;
#   alloc_failure:   the same limit with --skip_memory_check fails in an allocation: status 1, one error line, no
#                    C++ stack trace.
source "$(dirname "$0")/script_lib.sh"
tiny=(train --config "$root/configs/tiny.json" --synthetic_data --seq_len 32 --batch_size 2 --warmup_steps 2)

lock_concurrent() {
  # 0.1 s per step: the first run lives at least 6 s, longer than the second needs to start on any machine
  LLAMA2_TEST_HOOKS="compute_delay=0:0.1" \
    "$bin" "${tiny[@]}" --max_steps 60 --checkpoint_freq 20 --output_dir "$work/run" >"$work/first.log" 2>&1 &
  local first=$!
  for _ in $(seq 100); do [[ -s "$work/run/metrics.jsonl" ]] && break; sleep 0.1; done
  [[ -s "$work/run/metrics.jsonl" ]] || fail "the first run wrote no metrics"
  local start status elapsed_ms
  start=$(date +%s%N)
  "$bin" "${tiny[@]}" --max_steps 60 --output_dir "$work/run" >"$work/second.log" 2>&1
  status=$? elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  [[ $status -eq 2 ]] || fail "second run: status $status, expected 2: $(tail -3 "$work/second.log")"
  grep -q "in use by a live run (host $(hostname), pid $first" "$work/second.log" ||
    fail "second run does not name the first: $(tail -2 "$work/second.log")"
  (( elapsed_ms < 10000 )) || fail "second run took $elapsed_ms ms to refuse"
  wait $first || fail "the first run failed: $(tail -3 "$work/first.log")"
  local steps
  steps=$(grep -o '"step":[0-9]*' "$work/run/metrics.jsonl" | cut -d: -f2)
  [[ "$steps" == "$(seq 60)" ]] || fail "metrics.jsonl does not hold steps 1..60 once each"
  [[ ! -e "$work/run/run.lock" ]] || fail "the lock outlived its run"
  "$bin" "${tiny[@]}" --max_steps 61 --output_dir "$work/run" >"$work/resume.log" 2>&1 ||
    fail "its checkpoint does not resume: $(tail -2 "$work/resume.log")"
  grep -q "resumed from .*step-00000060: step 60" "$work/resume.log" || fail "did not resume from step 60"
  echo "ok: second run refused in $elapsed_ms ms: $(grep -o 'error: .*' "$work/second.log" | cut -c1-160)"
}

lock_stale() {
  mkdir -p "$work/run"
  sleep 0 &
  local dead=$!
  wait $dead
  printf '{"host": "%s", "pid": %d, "slurm_job_id": "", "slurm_restart_count": "", "started": "2026-01-01T00:00:00Z"}\n' \
    "$(hostname)" "$dead" >"$work/run/run.lock"
  "$bin" "${tiny[@]}" --max_steps 3 --output_dir "$work/run" >"$work/run.log" 2>&1 || fail "$(tail -3 "$work/run.log")"
  grep -q "taking over .*run.lock .*its process $dead no longer runs" "$work/run.log" || fail "no takeover warning"
  echo "ok: $(grep -o 'taking over.*' "$work/run.log")"
}

async_fallback() {
  local args=(train --config "$root/configs/llama2-58m.json" --synthetic_data --batch_size 1 --seq_len 128
              --warmup_steps 1 --max_steps 4 --checkpoint_freq 2)
  # Each background write starts 1 s late (slow_save), so the next optimizer step comes while it is in flight.
  LLAMA2_TEST_HOOKS="mem_available=1.4;slow_save=1" "$bin" "${args[@]}" --output_dir "$work/run" >"$work/run.log" 2>&1 ||
    fail "status $?: $(grep -m1 error "$work/run.log")"
  grep -q "async_save: the .* copy a save keeps while it is written does not fit beside this layout" "$work/run.log" ||
    fail "no warning that saves write the live state"
  [[ $(grep -c "checkpoint of step [24]: training held .* the live state written in the background" "$work/run.log") -eq 2 ]] ||
    fail "the saves were not written from the live state"
  grep -q "step 3: the optimizer step waited .* for checkpoint 2's write of the live state" "$work/run.log" ||
    fail "step 3's optimizer step did not wait for step 2's write"
  "$bin" "${args[@]}" --async_save=false --output_dir "$work/sync" >"$work/sync.log" 2>&1 || fail "the synchronous run"
  for step in 00000002 00000004; do
    cmp -s "$work/run/checkpoints/step-$step/rank-00000.safetensors" "$work/sync/checkpoints/step-$step/rank-00000.safetensors" ||
      fail "step $step's checkpoint written from the live state differs from the synchronous save's"
  done
  LLAMA2_TEST_HOOKS="mem_available=0.5" "$bin" "${args[@]}" --output_dir "$work/small" >"$work/small.log" 2>&1
  local status=$?
  [[ $status -eq 2 ]] || fail "status $status at 0.5 GiB, expected 2"
  echo "ok: $(grep -o 'step 3: the optimizer step waited.*' "$work/run.log"); checkpoints 2 and 4 bitwise those of" \
       "synchronous saves; at 0.5 GiB: status 2"
}

memory_7b() {
  local start status elapsed_ms
  start=$(date +%s%N)
  "$bin" train --config "$root/configs/llama2-7b.json" --synthetic_data --seq_len 512 --batch_size 1 \
    --output_dir "$work/run" >"$work/run.log" 2>&1
  status=$? elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  [[ $status -eq 2 ]] || fail "status $status, expected 2"
  grep -q "this layout does not fit in memory" "$work/run.log" || fail "$(tail -2 "$work/run.log")"
  echo "ok: refused in $elapsed_ms ms: $(grep -o 'error: .*' "$work/run.log" | cut -c1-200)"
}

memory_rlimit() {
  (ulimit -v 4000000 && exec "$bin" train --config "$root/configs/llama2-58m.json" --synthetic_data --seq_len 2048 \
    --batch_size 8 --max_steps 1 --output_dir "$work/run") >"$work/run.log" 2>&1
  local status=$?
  [[ $status -eq 2 ]] || fail "status $status, expected 2: $(tail -3 "$work/run.log")"
  grep -q "allowed by RLIMIT_AS" "$work/run.log" || fail "$(tail -2 "$work/run.log")"
  echo "ok: $(grep -o 'error: .*' "$work/run.log" | cut -c1-160)"
}

alloc_failure() {
  (ulimit -v 4000000 && exec "$bin" train --config "$root/configs/llama2-58m.json" --synthetic_data --seq_len 2048 \
    --batch_size 8 --max_steps 1 --skip_memory_check --output_dir "$work/run") >"$work/run.log" 2>&1
  local status=$?
  [[ $status -eq 1 ]] || fail "status $status, expected 1: $(tail -3 "$work/run.log")"
  grep -q "frame #" "$work/run.log" && fail "a stack trace was printed"
  [[ $(grep -c "^error: " "$work/run.log") -eq 1 ]] || fail "expected one error line: $(tail -3 "$work/run.log")"
  echo "ok: $(grep '^error: ' "$work/run.log" | cut -c1-200)"
}

"$case"
