# shellcheck shell=bash
# Sourced by the sbatch scripts: derives DP and accumulation from the layout as the recipe's launch script
# does, runs the ranks with srun --mpi=pmix, tells apart how the job ended (completed 0, runtime failure 1, bad
# input 2, preempted 3, a hang 4, a lost rank 5) and acts on it:
#   3 (a signal, after saving): requeue; the restarted job resumes from the latest checkpoint by itself;
#   5 (a rank lost: its node died, froze or was cut off): the lost hosts are excluded and the job requeued, so it
#     resumes on the nodes left (with --nodes=MIN-MAX, Slurm gives what it has) with the same global batch: DP
#     shrinks, accumulation grows, the data position is the same global sample;
#   4 (a hang) is said as such and not requeued: its node is alive and would likely be allocated again.
# A job that is requeued 3 times in a row without completing a step is not requeued again.
# Inputs (set by the sbatch script): RANKS_PER_NODE THREADS_PER_RANK TP GBS MBS CONFIG OUT and TRAIN_ARGS (array).
set -euo pipefail
REPO=${REPO:-${SLURM_SUBMIT_DIR:-$PWD}}
BIN=${BIN:-$REPO/build/llama2_pretrain}
MAX_RESTARTS_WITHOUT_PROGRESS=${MAX_RESTARTS_WITHOUT_PROGRESS:-3}
mkdir -p "$OUT"
# Hosts this job lost before a requeue are not used again by it, even where Slurm allocates them again.
excluded_file="$OUT/excluded-hosts-${SLURM_JOB_ID:-none}"
EXCLUDED=$(cat "$excluded_file" 2>/dev/null || true)
ALLOCATED=${SLURM_JOB_NUM_NODES:-1}
if [[ -n "$EXCLUDED" && -n "${SLURM_JOB_NODELIST:-}" ]]; then
  ALLOCATED=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | grep -cvxF -f <(tr , '\n' <<<"$EXCLUDED") || true)
  echo "not using ${EXCLUDED} (lost earlier in this job): $ALLOCATED usable of ${SLURM_JOB_NUM_NODES} nodes allocated"
fi

# The most nodes of the allocation that make a valid layout: world divisible by TP, GBS by MBS x DP.
NODES=$ALLOCATED
while (( NODES > 0 )); do
  WORLD=$(( NODES * RANKS_PER_NODE ))
  DP=$(( WORLD / TP ))
  (( WORLD % TP == 0 && GBS % (MBS * DP) == 0 )) && break
  NODES=$(( NODES - 1 ))
done
if (( NODES == 0 )); then
  echo "error: no node count up to $ALLOCATED makes a layout: world = nodes x RANKS_PER_NODE=$RANKS_PER_NODE must be" \
       "divisible by TP=$TP, and GBS=$GBS by MBS=$MBS x DP" >&2
  exit 2
fi
ACCUM=$(( GBS / MBS / DP ))
(( NODES < ALLOCATED )) &&
  echo "using $NODES of the $ALLOCATED nodes allocated: $ALLOCATED would make DP $(( ALLOCATED * RANKS_PER_NODE / TP )), which does not divide GBS=$GBS / MBS=$MBS"
echo "job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}): $NODES nodes x $RANKS_PER_NODE ranks = world $WORLD," \
     "TP $TP, DP $DP, micro-batch $MBS, accumulation $ACCUM, global batch $GBS → $OUT"

# The last step trained so far (metrics.jsonl's last line), to tell a restart that made progress from one that did not.
last_step() { [[ -f "$OUT/metrics.jsonl" ]] && tail -1 "$OUT/metrics.jsonl" | sed -n 's/.*"step":\([0-9]*\).*/\1/p' || true; }
step_before=$(last_step)

# srun returns the highest exit status of the tasks, or 128 + a signal when it killed one (after the first rank
# that ended the job, the others' ends hide its status): the rank that decides a hang or a lost rank also writes
# $OUT/job-end.json with its status and line, and that is what this script goes by. Without it, the status is
# that of the first task to end as srun reports it on stderr ("task 0: Exited with exit code 2"), where srun then
# killed the others (a bad flag fails every rank, but the first to exit gets the slower ones killed: 143).
rm -f "$OUT/job-end.json"
status=0
{ srun --mpi=pmix --nodes="$NODES" --ntasks=$(( NODES * RANKS_PER_NODE )) --ntasks-per-node="$RANKS_PER_NODE" \
    --cpus-per-task="$THREADS_PER_RANK" --kill-on-bad-exit=1 ${EXCLUDED:+--exclude="$EXCLUDED"} \
    "$BIN" train --config "$CONFIG" --tensor_parallel_size "$TP" --batch_size "$MBS" --grad_accum_usteps "$ACCUM" \
    --threads "$THREADS_PER_RANK" --output_dir "$OUT" "${TRAIN_ARGS[@]}" 2>&1 >&3 3>&-; } 3>&1 |
  tee "$OUT/srun.stderr" >&2 || status=$?  # srun's status (pipefail); its stderr also kept for the reading below
srun_status=$status
reason=""
if [[ -f "$OUT/job-end.json" ]]; then
  status=$(sed -n 's/^ *"status": *\([0-9]*\).*/\1/p' "$OUT/job-end.json")
  reason=$(sed -n 's/^ *"line": *"\(.*\)",\{0,1\}$/\1/p' "$OUT/job-end.json")
elif (( status > 128 )); then
  first_end=$(grep -m1 -E '^srun: error: [^:]*: tasks? [0-9,-]+: ' "$OUT/srun.stderr" || true)
  [[ $first_end =~ Exited\ with\ exit\ code\ ([0-9]+) ]] && status=${BASH_REMATCH[1]}
fi

# Requeues this job, unless it has now been restarted MAX_RESTARTS_WITHOUT_PROGRESS times without a step.
requeue() {
  local stalled=0
  [[ -f "$OUT/restarts-without-progress" ]] && stalled=$(cat "$OUT/restarts-without-progress")
  if [[ "$(last_step)" != "$step_before" ]]; then stalled=0; else stalled=$(( stalled + 1 )); fi
  echo "$stalled" >"$OUT/restarts-without-progress"
  if (( stalled >= MAX_RESTARTS_WITHOUT_PROGRESS )); then
    echo "job $SLURM_JOB_ID: $stalled restarts in a row completed no step: not requeued again; see the lines above" >&2
    exit "$status"
  fi
  echo "requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
}

case $status in
  0) echo "job ${SLURM_JOB_ID:-?}: training completed"
     rm -f "$OUT/restarts-without-progress" ;;
  2) echo "job ${SLURM_JOB_ID:-?}: bad input (exit status 2; srun returned $srun_status): the 'error:' line above" \
          "names the flag, key or file; fix it and resubmit (not requeued: it would fail the same way)" >&2 ;;
  3) echo "stopped by a signal after saving a checkpoint"
     requeue ;;
  4) echo "job ${SLURM_JOB_ID:-?}: a rank hung (exit status 4; srun returned $srun_status): ${reason:-see the 'error:' line above}." \
          "Each rank's last collectives are in $OUT/hang/; drain or check the node named, then resubmit: the job" \
          "resumes from its latest checkpoint" >&2 ;;
  5) lost=$(grep -o 'lost [^:]*' <<<"$reason" | grep -o 'host [^ ,()]*' | cut -d' ' -f2 | sort -u | paste -sd, || true)
     echo "job ${SLURM_JOB_ID:-?}: a rank was lost (exit status 5; srun returned $srun_status): ${reason:-see the 'error:' line above}." \
          "Each reachable rank's last collectives are in $OUT/hang/" >&2
     if [[ -n "$lost" ]]; then
       EXCLUDED=${EXCLUDED:+$EXCLUDED,}$lost
       echo "$EXCLUDED" >"$excluded_file"
       echo "excluding ${EXCLUDED} and requeueing: the job resumes on the nodes left from its latest checkpoint," \
            "with the same global batch"
     fi
     requeue ;;
  *) echo "job ${SLURM_JOB_ID:-?}: runtime failure (exit status $status; srun returned $srun_status): see the" \
          "'error:' line above" >&2 ;;
esac
exit "$status"
