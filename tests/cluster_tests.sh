#!/usr/bin/env bash
# Faults on the local multi-node Slurm cluster (scripts/local-slurm.sh start --nodes 3, started once by the ctest
# fixture `cluster_start`, which drains l2n3 for all but slow_link): a dp=2 job with one rank on each of l2n1 and l2n2,
# launched by sbatch of scripts/smoke.sbatch through scripts/slurm-launch.sh, --heartbeat_timeout 5. Each case
# measures from the fault to the first line naming it.
# Usage: cluster_tests.sh CASE REPO_ROOT SLURM_STATE_DIR
#   stop_rank:       SIGSTOP of rank 1 (node l2n2) → rank 0 ends the job with status 5 within 5 + 15 s naming host
#                    l2n2 and rank 1; hang/rank-0.json holds rank 0's flight recorder; the launcher says "a rank was lost"
#   stop_rank0:      SIGSTOP of rank 0 (node l2n1, where the batch script runs) → rank 1 names host l2n1 and rank 0
#   kill_node:       SIGKILL of every process of l2n2 (slurmd too) → the same line within 5 + 15 s
#   cut_link:        l2n2's link down → the same line within 5 + 15 s
#   skip_collective: rank 1 alive but never joining dp collective #30 (test hook), --collective_timeout 4 → status 4,
#                    rank 0's line saying rank 1 on l2n2 has not joined it; then a resubmitted job on l2n2 alone takes
#                    over the run.lock the killed job left on l2n1, warning that Slurm says that job no longer runs
#   tp_span:         TP=2 over 2 nodes of 1 rank → status 2 naming both hosts; the launcher says "bad input"
#   slow_link:       3 nodes, 1 rank each (dp 3, a 4096-token vocabulary: 1.8 MB of gradients a step); healthy, no
#                    "slow link" line in 40 steps and a slowest link round trip under 20 ms in metrics.jsonl; then
#                    l2n2's link limited to 5 Mbit/s (tc tbf on l2v2) → rank 0 names host l2n2 (rank 1) as the slow
#                    link within 90 s
#   prepare_data:    prepare-data by srun over l2n1 and l2n2 (1 rank each, the addresses as 1 MiB .jsonl pieces) writes
#                    the corpus one rank on the host writes, byte for byte
#   elastic:         a job of --nodes=1-2 (dp 2, checkpoint every 5) loses node 2 (SIGSTOP of its rank) at step ~12 →
#                    the launcher excludes l2n2 and requeues; the job resumes on l2n1 alone from step 10 with
#                    accumulation 2 and the same global batch: losses and consumed tokens of steps 11-30 bitwise equal
#                    to an uninterrupted 2-node run
set -u
case=$1 root=$(realpath "$2") state=$3
export SLURM_CONF=$state/slurm.conf
work=$(mktemp -d -p "$PWD" cluster-XXXX)  # the build tree: the shared filesystem, as the nodes see it
job=""
fail() {
  echo "FAIL: $*"
  for f in "$work"/*.out; do [[ -f $f ]] && { echo "--- $f"; tail -25 "$f"; }; done
  exit 1
}
cleanup() {  # node 2 healthy again first (a cut link keeps its job from ending), then the job gone
  [[ $case == kill_node || $case == cut_link ]] && LOCAL_SLURM_DIR=$state bash "$root/scripts/local-slurm.sh" revive 2
  [[ $case == slow_link ]] && tc qdisc del dev l2v2 root 2>/dev/null
  [[ -n "$job" ]] && scancel "$job" 2>/dev/null
  wait_job_gone 120
  [[ $case == slow_link ]] && scontrol update NodeName=l2n3 State=DRAIN Reason=spare
  rm -rf "$work"
}
trap cleanup EXIT
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# Waits up to SECONDS for $job to leave the queue (none: returns at once).
wait_job_gone() {
  local deadline=$(( $(now_ms) + $1 * 1000 ))
  while [[ -n "$job" ]] && squeue -h -j "$job" 2>/dev/null | grep -q . && (( $(now_ms) < deadline )); do sleep 0.2; done
}

# Submits the smoke job over $NODES nodes (default both l2n1 and l2n2; 1 rank each, dp = nodes) with more flags;
# sets $job.
submit() {  # NAME EXTRA_TRAIN_ARGS [sbatch options...]
  local name=$1 extra=$2 nodes=${NODES:-2}
  shift 2
  job=$(sbatch --parsable --chdir="$root" --job-name="$name" --output="$work/$name-%j.out" --nodes="$nodes" \
    --ntasks="$nodes" --ntasks-per-node=1 --no-requeue \
    --export=ALL,REPO="$root",OUT="$work/$name",RANKS_PER_NODE=1,TP=1,GBS="$nodes",MBS=1,MAX_STEPS=${MAX_STEPS:-1000000},EXTRA_TRAIN_ARGS="$extra" \
    "$@" "$root/scripts/smoke.sbatch") || fail "sbatch"
}

# Waits until the job has trained `steps` steps.
wait_steps() {
  local steps=$1
  for _ in $(seq 600); do
    [[ -f "$work/$2/metrics.jsonl" ]] && (( $(wc -l <"$work/$2/metrics.jsonl") >= steps )) && return
    sleep 0.2
  done
  fail "the job did not reach step $steps in 120 s"
}

# The pid of the training rank running on node l2nN (run in $(...): the caller fails on its status).
rank_on_node() {
  local pid
  for pid in $(ip netns pids "l2n$1"); do  # the binary itself, not the srun whose arguments name it
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */llama2_pretrain ]] && { echo "$pid"; return; }
  done
  fail "no training rank on l2n$1"
}

# Waits up to `limit_s` for a line matching `pattern` in the job's output; prints the ms since `start_ms` (run in
# $(...): the caller fails on its status).
wait_line() {  # PATTERN START_MS LIMIT_S
  local pattern=$1 start=$2 limit=$3
  while (( $(now_ms) - start < limit * 1000 )); do
    grep -qE "$pattern" "$work"/*.out 2>/dev/null && { echo $(( $(now_ms) - start )); return; }
    sleep 0.1
  done
  fail "no line matching '$pattern' within $limit s"
}

lost_rank_case() {  # NAME NODE FAULT_COMMAND: the fault hits node NODE (1 or 2), the other node's rank names it
  local name=$1 node=$2 fault=$3 start elapsed
  local lost=$(( node - 1 )) other=$(( 2 - node ))
  submit "$name" "--heartbeat_timeout 5"
  wait_steps 5 "$name"
  local pid
  pid=$(rank_on_node "$node") || fail "$pid"
  start=$(now_ms)
  eval "$fault"
  elapsed=$(wait_line "^error: rank $other: lost host l2n$node \(rank $lost\): no heartbeat" "$start" 20) ||
    fail "$elapsed"
  echo "ok: $name: named $elapsed ms after the fault: $(grep -ohE "^error: rank $other: lost .*" "$work"/*.out | head -1 | cut -c1-400)"
}

stop_rank() {
  lost_rank_case stop_rank 2 'kill -STOP $pid'
  wait_job_gone 20
  grep -q "a rank was lost (exit status 5" "$work"/*.out || fail "the launcher did not say a rank was lost"
  [[ -s "$work/stop_rank/hang/rank-0.json" ]] || fail "no flight recorder of rank 0 in hang/"
  grep -q '"op": "all_reduce"' "$work/stop_rank/hang/rank-0.json" || fail "rank 0's ring holds no collective"
  grep -q '"status": 5' "$work/stop_rank/job-end.json" || fail "job-end.json does not say status 5"
  echo "ok: launcher: $(grep -o 'job [0-9]*: a rank was lost.*' "$work"/*.out | cut -c1-200)"
}

kill_node() { lost_rank_case kill_node 2 'ip netns pids l2n2 | xargs -r kill -9'; }
cut_link() { lost_rank_case cut_link 2 'ip link set l2v2 down'; }
stop_rank0() { lost_rank_case stop_rank0 1 'kill -STOP $pid'; }  # no coordinator: rank 1 names the lost rank 0

skip_collective() {
  export LLAMA2_TEST_HOOKS="skip_collective=1:dp:30"
  submit skip "--heartbeat_timeout 5 --collective_timeout 4"
  unset LLAMA2_TEST_HOOKS
  local start elapsed
  start=$(now_ms)
  elapsed=$(wait_line "^error: rank 0: waiting .* dp [a-z_]+ #30 .*rank 1 \(host l2n2, tp_rank 0, dp_rank 1\) has not joined it" "$start" 60) ||
    fail "$elapsed"
  echo "ok: skip_collective: $(grep -ohE '^error: rank 0: waiting .*' "$work"/*.out | head -1 | cut -c1-400)"
  wait_job_gone 30
  grep -q "a rank hung (exit status 4" "$work"/*.out || fail "the launcher did not say a rank hung"
  [[ -f "$work/skip/run.lock" ]] || fail "the hung job left no run.lock to take over"
  # Resubmitted (a new job id) on the other node alone, to the same directory: the stale lock is taken over.
  job=$(sbatch --parsable --chdir="$root" --output="$work/again-%j.out" --nodes=1 --ntasks=1 --nodelist=l2n2 \
    --no-requeue --export=ALL,REPO="$root",OUT="$work/skip",RANKS_PER_NODE=1,TP=1,GBS=1,MBS=1,MAX_STEPS=3 \
    "$root/scripts/smoke.sbatch") || fail "sbatch"
  wait_job_gone 60
  grep -qE "taking over .*run.lock from host l2n1.*Slurm (says job [0-9]+ is [A-Z_]+|no longer knows job [0-9]+)" \
    "$work"/again-*.out || fail "the resubmitted job did not take over the stale lock"
  echo "ok: $(grep -ohE 'taking over .*' "$work"/again-*.out | head -1)"
}

tp_span() {
  job=$(sbatch --parsable --chdir="$root" --output="$work/span-%j.out" --nodes=2 --ntasks=2 --ntasks-per-node=1 \
    --no-requeue --export=ALL,REPO="$root",OUT="$work/span",RANKS_PER_NODE=1,TP=2,GBS=2,MBS=2 \
    "$root/scripts/smoke.sbatch") || fail "sbatch"
  wait_job_gone 60
  grep -q "the TP group of ranks 0..1 spans hosts l2n1 (rank 0) and l2n2 (rank 1)" "$work"/span-*.out ||
    fail "no error naming the two hosts"
  grep -q "bad input (exit status 2" "$work"/span-*.out || fail "the launcher did not say bad input"
  echo "ok: $(grep -ohE 'error: .*spans hosts.*' "$work"/span-*.out | head -1 | cut -c1-300)"
}

slow_link() {
  scontrol update NodeName=l2n3 State=RESUME || fail "cannot resume l2n3"
  cat >"$work/small.json" <<JSON
{"vocab_size": 4096, "hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "max_position_embeddings": 256, "hidden_act": "silu"}
JSON
  export NODES=3 CONFIG=$work/small.json LOG_INTERVAL=1
  # Healthy: rank 0 computes 0.25 s a step (test hook), so 40 steps last long enough for the round trips to settle.
  LLAMA2_TEST_HOOKS="compute_delay=0:0.25" MAX_STEPS=40 submit healthy ""
  wait_job_gone 120
  grep -q "training completed" "$work"/healthy-*.out || fail "the healthy 3-node run did not complete"
  ! grep -q "slow link" "$work"/healthy-*.out || fail "a slow link named on a healthy cluster: $(grep -m1 'slow link' "$work"/healthy-*.out)"
  local healthy_ms
  healthy_ms=$(grep -o '"link_rtt_s_max":[0-9.e-]*' "$work/healthy/metrics.jsonl" | cut -d: -f2 | sort -g | tail -1 |
    awk '{ printf "%.1f", 1e3 * $1 }')
  [[ -n "$healthy_ms" ]] && awk -v ms="$healthy_ms" 'BEGIN { exit !(ms < 20) }' ||
    fail "the healthy run's slowest link round trip is '$healthy_ms' ms, expected one under 20 ms"
  tc qdisc add dev l2v2 root tbf rate 5mbit burst 32kb latency 400ms || fail "tc"
  local start elapsed
  start=$(now_ms)
  submit slow ""
  elapsed=$(wait_line "slow link: host l2n2 \(ranks 1\): [0-9.]+ ms round trip" "$start" 90) || fail "$elapsed"
  echo "ok: slow_link: healthy 3 nodes: no line in 40 steps, slowest round trip $healthy_ms ms; l2n2 at 5 Mbit/s: named" \
       "$elapsed ms after submission: $(grep -ohE 'slow link: .*' "$work"/slow-*.out | head -1)"
}

prepare_data() {
  local bin=${BIN:-$root/build/llama2_pretrain}
  /usr/bin/python3 "$root/tests/sotu_as_jsonl.py" "$root/assets/sotu" "$work/docs.jsonl"
  local args=(prepare-data --tokenizer "$root/assets/tokenizer.model" --input "$work/docs.jsonl" --piece_mib 1)
  "$bin" "${args[@]}" --output_dir "$work/one" >"$work/one.log" 2>&1 || fail "1 rank: $(tail -2 "$work/one.log")"
  srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --mpi=pmix --chdir="$work" "$bin" "${args[@]}" \
    --output_dir "$work/two" >"$work/two.log" 2>&1 || fail "srun over 2 nodes: $(tail -3 "$work/two.log")"
  grep -q "prepare-data (rank 1 of 2)" "$work/two.log" || fail "rank 1 reported no share"
  diff -r "$work/one" "$work/two" >/dev/null || fail "the 2-node corpus differs: $(diff -rq "$work/one" "$work/two" | head -2)"
  echo "ok: prepare-data over l2n1 and l2n2 = 1 rank byte for byte: $(grep -o 'prepare-data (rank [01] of 2): [0-9.]*/[0-9.]* MB' "$work/two.log" | sort -u | tr '\n' ' ')"
}

# Steps 11-30's loss and consumed tokens (the last record of each step) of a run's metrics.
steps_11_30() {
  grep -o '"step":[0-9]*\|"loss":[^,}]*\|"consumed_tokens":[0-9]*' "$1" | paste - - - |
    awk -F'[:\t]' '$2 >= 11 && $2 <= 30 { v[$2] = $0 } END { for (s in v) print v[s] }' | sort -t: -k2 -n
}

elastic() {
  local env=ALL,REPO="$root",RANKS_PER_NODE=1,TP=1,GBS=2,MBS=1,MAX_STEPS=30,CHECKPOINT_FREQ=5
  job=$(sbatch --parsable --chdir="$root" --output="$work/whole-%j.out" --nodes=2 --ntasks-per-node=1 --no-requeue \
    --export="$env",OUT="$work/whole" "$root/scripts/smoke.sbatch") || fail "sbatch"
  wait_job_gone 120
  grep -q "training completed" "$work"/whole-*.out || fail "the uninterrupted run did not complete"
  job=$(sbatch --parsable --chdir="$root" --output="$work/elastic-%j.out" --nodes=1-2 --ntasks-per-node=1 --requeue \
    --export="$env",OUT="$work/elastic",EXTRA_TRAIN_ARGS="--heartbeat_timeout 5" "$root/scripts/smoke.sbatch") || fail "sbatch"
  for _ in $(seq 600); do  # past step 12, with step 10's checkpoint published (saves are asynchronous)
    [[ -f "$work/elastic/metrics.jsonl" ]] && (( $(wc -l <"$work/elastic/metrics.jsonl") >= 12 )) &&
      grep -q "step-00000010 published" "$work"/elastic-*.out 2>/dev/null && break
    sleep 0.05
  done
  local pid
  pid=$(rank_on_node 2) || fail "$pid"
  kill -STOP "$pid"
  for _ in $(seq 1500); do  # Slurm holds a requeued job about 2 minutes (BeginTime) before restarting it
    grep -q "training completed" "$work"/elastic-*.out 2>/dev/null && break
    sleep 0.2
  done
  grep -q "training completed" "$work"/elastic-*.out || fail "the elastic job did not complete after the loss"
  grep -q "excluding l2n2 and requeueing" "$work"/elastic-*.out || fail "the launcher did not exclude l2n2"
  grep -q "world 1, TP 1, DP 1, micro-batch 1, accumulation 2, global batch 2" "$work"/elastic-*.out ||
    fail "the requeued job did not run on 1 node with accumulation 2"
  local resumed  # step 10's checkpoint, or step 15's if that was published too before the node was stopped
  resumed=$(grep -o "resumed from .*step-000000\(10\|15\)" "$work"/elastic-*.out | grep -o "[0-9]*$" | head -1)
  [[ -n "$resumed" ]] || fail "the requeued job did not resume from the last checkpoint before the loss (step 10 or 15)"
  diff <(steps_11_30 "$work/whole/metrics.jsonl") <(steps_11_30 "$work/elastic/metrics.jsonl") ||
    fail "steps 11-30 differ from the uninterrupted 2-node run"
  echo "ok: elastic: lost l2n2 at step $(grep -o '"step":[0-9]*' "$work/elastic/metrics.jsonl" | sed -n 12p | cut -d: -f2)," \
       "requeued, resumed on 1 node from step $((10#$resumed)) with accumulation 2; steps 11-30 bitwise equal"
  grep -hE "lost host|excluding|requeueing|job [0-9]+ \(restart|resumed from|not using" "$work"/elastic-*.out | cut -c1-250
}

"$case"
