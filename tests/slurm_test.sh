#!/usr/bin/env bash
# On the local Slurm cluster (scripts/local-slurm.sh, started once by the ctest fixture `cluster_start`):
#   1. sbatch --wait scripts/smoke.sbatch: the job completes, both ranks trained, the loss fell, a checkpoint exists;
#   2. a longer smoke job gets `scancel --signal=USR1`: it saves, requeues itself and resumes to completion.
#   3. a stand-in binary whose rank 0 exits 2 while rank 1 runs on: the launcher says bad input, not 143.
# Usage: slurm_test.sh REPO_ROOT SLURM_STATE_DIR
set -u
root=$(realpath "$1")
export SLURM_CONF=$2/slurm.conf
work=$(mktemp -d -p "$PWD" slurm-XXXX)  # the build tree: the shared filesystem, as the nodes see it
fail() { echo "FAIL: $*"; for f in "$work"/*.out; do echo "--- $f"; tail -45 "$f"; done; exit 1; }
trap 'rm -rf "$work"' EXIT

# 1. The smoke job, waited for.
sbatch --wait --chdir="$root" --output="$work/smoke-%j.out" --export=ALL,REPO="$root",OUT="$work/smoke" \
  "$root/scripts/smoke.sbatch" >/dev/null || fail "smoke job did not complete successfully"
log=$(cat "$work"/smoke-*.out)
grep -q "\[rank 0\] step 60/60" <<<"$log" || fail "rank 0 did not reach step 60"
grep -q "\[rank 1\] step 60/60" <<<"$log" || fail "rank 1 did not reach step 60"
first=$(head -1 "$work/smoke/metrics.jsonl" | grep -o '"loss":[^,]*' | cut -d: -f2)
last=$(tail -1 "$work/smoke/metrics.jsonl" | grep -o '"loss":[^,]*' | cut -d: -f2)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 1) }' || fail "loss did not fall: $first → $last"
[[ -f "$work/smoke/checkpoints/latest" ]] || fail "no checkpoint"
echo "ok: smoke job completed on 2 ranks, loss $first → $last, checkpoint $(cat "$work/smoke/checkpoints/latest")"

# 2. USR1 mid-run → save, requeue, resume, complete.
job=$(sbatch --parsable --chdir="$root" --output="$work/long-%j.out" \
  --export=ALL,REPO="$root",OUT="$work/long",MAX_STEPS=200 "$root/scripts/smoke.sbatch") || fail "submit"
for _ in $(seq 600); do
  [[ -f "$work/long/metrics.jsonl" && $(wc -l <"$work/long/metrics.jsonl") -ge 30 ]] && break
  sleep 0.2
done
scancel --signal=USR1 "$job" || fail "scancel --signal=USR1"
for _ in $(seq 900); do  # Slurm holds a requeued job about 2 minutes (BeginTime) before restarting it
  squeue -h -j "$job" 2>/dev/null | grep -q . || break
  sleep 0.5
done
squeue -h -j "$job" 2>/dev/null | grep -q . && fail "job $job still in the queue after 450 s"
log=$(cat "$work"/long-*.out)
grep -q "requeueing job $job" <<<"$log" || fail "the job did not requeue itself"
grep -q "resumed from" <<<"$log" || fail "the requeued job did not resume"
last_step=$(tail -1 "$work/long/metrics.jsonl" | grep -o '"step":[0-9]*' | cut -d: -f2)
[[ "$last_step" == 200 ]] || fail "the resumed job ended at step $last_step, expected 200"
echo "ok: USR1 → $(grep -o 'stopped by signal after step [0-9]*' <<<"$log" | head -1) → requeued → $(grep -o 'resumed from [^:]*' <<<"$log" | head -1) → step 200"

# 3. The launcher's reading of how a job ended when srun killed ranks: a stand-in binary whose rank 0 exits 2 at
#    once while rank 1 would run on; srun kills rank 1 (143) and returns 143, and the launcher must still say
#    "bad input (exit status 2)", the first task's status as srun reported it.
cat >"$work/bad-flag-rank0.sh" <<'SH'
#!/usr/bin/env bash
if [[ $SLURM_PROCID == 0 ]]; then echo "error: --no_such_flag: not a flag (stand-in)" >&2; exit 2; fi
sleep 60
SH
chmod +x "$work/bad-flag-rank0.sh"
sbatch --wait --chdir="$root" --output="$work/bad-%j.out" --no-requeue \
  --export=ALL,REPO="$root",OUT="$work/bad",BIN="$work/bad-flag-rank0.sh" "$root/scripts/smoke.sbatch" >/dev/null &&
  fail "the bad-input job succeeded"
log=$(cat "$work"/bad-*.out)
grep -q "bad input (exit status 2; srun returned 143)" <<<"$log" || fail "the launcher did not say bad input"
echo "ok: $(grep -o 'job [0-9]*: bad input (exit status 2; srun returned 143)' <<<"$log")"
