# Sourced by the sbatch scripts: derives DP and accumulation from the layout as the recipe's launch script
# does, runs the ranks with srun --mpi=pmix, and requeues the job when the binary stopped on a signal
# after saving (exit status 3), so a preempted or timed-out job resumes by itself. A hang (status 4) is said
# as such and not requeued: the stuck node would likely be allocated again.
# Inputs (set by the sbatch script): RANKS_PER_NODE THREADS_PER_RANK TP GBS MBS CONFIG OUT and TRAIN_ARGS (array).
set -euo pipefail
REPO=${REPO:-${SLURM_SUBMIT_DIR:-$PWD}}
BIN=${BIN:-$REPO/build/llama2_pretrain}
NODES=${SLURM_JOB_NUM_NODES:-1}
WORLD=$(( NODES * RANKS_PER_NODE ))
if (( WORLD % TP != 0 )); then
  echo "error: world size $WORLD (= $NODES nodes x RANKS_PER_NODE=$RANKS_PER_NODE) is not divisible by TP=$TP" >&2
  exit 2
fi
DP=$(( WORLD / TP ))
if (( GBS % (MBS * DP) != 0 )); then
  echo "error: GBS=$GBS is not divisible by MBS=$MBS x DP=$DP; expected a multiple of $(( MBS * DP ))" >&2
  exit 2
fi
ACCUM=$(( GBS / MBS / DP ))
mkdir -p "$OUT"
echo "job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}): $NODES nodes x $RANKS_PER_NODE ranks = world $WORLD," \
     "TP $TP, DP $DP, micro-batch $MBS, accumulation $ACCUM, global batch $GBS → $OUT"
status=0
srun --mpi=pmix --ntasks-per-node="$RANKS_PER_NODE" --cpus-per-task="$THREADS_PER_RANK" --kill-on-bad-exit=1 \
  "$BIN" train --config "$CONFIG" --tensor_parallel_size "$TP" --batch_size "$MBS" --grad_accum_usteps "$ACCUM" \
  --threads "$THREADS_PER_RANK" --output_dir "$OUT" "${TRAIN_ARGS[@]}" || status=$?
if (( status == 3 )); then
  echo "stopped by a signal after saving a checkpoint: requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi
if (( status == 4 )); then
  echo "a rank hung (exit status 4): the 'error: rank R: waiting ...' line above names the stuck rank(s) and" \
       "their node; drain or check that node, then resubmit: the job resumes from its latest checkpoint" >&2
fi
exit "$status"
