#!/usr/bin/env bash
# Whole-job checkpoint tests of the binary. Usage: checkpoint_tests.sh CASE BINARY REPO_ROOT [MPIRUN...]
#   resume     20 steps vs 10 + resume + 10 (tp=2, and ZeRO-1 dp=2): losses and final shards bitwise equal
#   sigterm    SIGTERM to every rank at a random step → status 3 → rerun resumes → same losses as uninterrupted
#   sigkill    SIGKILL at random instants during frequent saves → `latest` always loads (eval --checkpoint)
#   reshard    a tp=2 checkpoint (fp32, and bf16 with fp32 master) resharded to tp=1, to dp=2 with ZeRO-1 and to dp=2
#              without, and saved before any step (--max_steps = its step, another --output_dir): its Adam moments and
#              fp32 weights (bf16: the master) unsharded by tests/checkpoint_state.py, bitwise equal to the original's;
#              then 5 steps at each layout: losses 11-15 within 1e-5 (bf16: $bf16_reshard_tol) of the tp=2 run's; and
#              tp=1 back to tp=2: bitwise the original
#   corrupt    missing shard, flipped bit, truncation, other config, unknown version: status 2, files untouched
#   async_kill a save every 5 steps whose background write is slowed (test hook slow_save=4): SIGKILL of every rank at
#              step ≥ 12 while step 10's write is in flight (its .tmp directory exists, `latest` names step 5) →
#              the rerun resumes from step 5 and its losses 6-20 are bitwise those of an uninterrupted run
#   rollback   20 steps saving every 5, then --resume_ckpt step 10 to 20 again (--keep_last 3): steps 15 and 20
#              saved again, the first pass's 15 and 20 moved into checkpoints/rolled-back-*/ (nothing deleted), one
#              line says so, and losses 11-20 bitwise equal to the first pass
source "$(dirname "$0")/script_lib.sh"
base=("$bin" train --config "$root/configs/tiny.json" --synthetic_data --seq_len 32 --lr 3e-3 --warmup_steps 2
      --log_interval 100)
train=("${base[@]}" --batch_size 2 --max_steps 20)
bf16_reshard_tol=1e-4
losses() { grep -o '"step":[0-9]*\|"loss":[^,}]*' "$1/metrics.jsonl" | paste - - | awk '{ v[$2] = $1 } END { for (s in v) print s, v[s] }' | sort -t: -k2 -n; }
# Loss of step N in a run's metrics (the last record of that step).
loss_at() { grep "\"step\":$2," "$1/metrics.jsonl" | tail -1 | grep -o '"loss":[^,}]*' | cut -d: -f2; }

resume() {
  for layout in "--tensor_parallel_size 2" "--use_zero_1=true"; do
    "${mpirun[@]}" -np 2 "${train[@]}" $layout --output_dir "$work/a" >/dev/null 2>&1 || fail "uninterrupted run"
    "${mpirun[@]}" -np 2 "${train[@]}" $layout --output_dir "$work/b" --steps_this_run 10 >/dev/null 2>&1 || fail "first half"
    "${mpirun[@]}" -np 2 "${train[@]}" $layout --output_dir "$work/b" >"$work/log" 2>&1 || fail "second half"
    grep -q "resumed from .*step-00000010" "$work/log" || fail "did not resume from step 10"
    diff <(losses "$work/a") <(losses "$work/b") || fail "losses differ ($layout)"
    for f in "$work"/a/checkpoints/step-00000020/rank-*.safetensors; do
      cmp "$f" "$work/b/checkpoints/step-00000020/$(basename "$f")" || fail "final parameters differ ($layout)"
    done
    echo "ok: $layout: 20 losses and final shards bitwise equal after resume"
    rm -rf "$work/a" "$work/b"
  done
}

sigterm() {
  local long=("${base[@]}" --batch_size 2 --max_steps 40 --tensor_parallel_size 2)
  "${mpirun[@]}" -np 2 "${long[@]}" --output_dir "$work/a" >/dev/null 2>&1 || fail "reference"
  "${mpirun[@]}" -np 2 "${long[@]}" --output_dir "$work/b" >/dev/null 2>&1 &
  job=$!
  target=$(( RANDOM % 25 + 3 ))
  for _ in $(seq 600); do
    [[ -f "$work/b/metrics.jsonl" && $(wc -l <"$work/b/metrics.jsonl") -ge $target ]] && break
    sleep 0.05
  done
  pkill -TERM -f -- "^$bin train .*--output_dir $work/b"  # every rank, as Slurm signals each task; not mpirun
  wait $job
  status=$?
  [[ $status -eq 3 ]] || fail "status $status after SIGTERM near step $target, expected 3"
  stopped=$(wc -l <"$work/b/metrics.jsonl")
  "${mpirun[@]}" -np 2 "${long[@]}" --output_dir "$work/b" >/dev/null 2>&1 || fail "restart"
  diff <(losses "$work/a") <(losses "$work/b") || fail "losses differ after SIGTERM and restart"
  echo "ok: SIGTERM after step $stopped → status 3 → restart → all 40 losses equal the uninterrupted run"
}

sigkill() {
  cat >"$work/mid.json" <<JSON
{"vocab_size": 32000, "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
 "num_attention_heads": 4, "hidden_act": "silu"}
JSON
  head -c 4000 "$root/assets/sotu/2021_joseph_r_biden_d.txt" >"$work/text.txt"
  for attempt in 1 2 3 4 5; do
    "$bin" train --config "$work/mid.json" --synthetic_data --seq_len 16 --batch_size 1 --max_steps 1000 \
      --checkpoint_freq 1 --keep_last 2 --output_dir "$work/run" >/dev/null 2>&1 &
    job=$!
    sleep "$(awk -v r=$RANDOM 'BEGIN { print 1.5 + r / 32768 * 2.5 }')"
    kill -KILL $job
    wait $job 2>/dev/null
    latest=$(cat "$work/run/checkpoints/latest" 2>/dev/null) || continue
    "$bin" eval --checkpoint "$work/run/checkpoints" --tokenizer "$root/assets/tokenizer.model" --text "$work/text.txt" \
      --seq_len 16 >"$work/eval" 2>&1 || { cat "$work/eval"; fail "latest ($latest) does not load after SIGKILL $attempt"; }
    echo "ok: SIGKILL $attempt: latest = $latest loads ($(ls "$work/run/checkpoints" | tr '\n' ' '))"
  done
}

# Whether losses a and b differ by at most `tol` relative.
close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t * b) }'; }

reshard() {
  local precision flags tol
  for precision in fp32 bf16; do
    [[ $precision == bf16 ]] && flags=--use_mix_precision tol=$bf16_reshard_tol || flags="" tol=1e-5
    local dir=$work/$precision
    # tp=2 over 15 steps, saving step 10: its steps 11-15 are the reference
    "${mpirun[@]}" -np 2 "${base[@]}" $flags --batch_size 2 --max_steps 15 --checkpoint_freq 10 --tensor_parallel_size 2 \
      --output_dir "$dir/tp2" >/dev/null 2>&1 || fail "$precision tp=2 base"
    local ckpt=$dir/tp2/checkpoints/step-00000010 layout np tp zero name step got ref
    for layout in "1 1 true" "2 1 true" "2 1 false"; do  # tp=1; dp=2 with ZeRO-1; dp=2 without
      read -r np tp zero <<<"$layout"
      name=np$np-tp$tp-zero$zero
      local same=("${base[@]}" $flags --batch_size $((2 * tp / np)) --tensor_parallel_size "$tp" --use_zero_1=$zero
                  --resume_ckpt "$ckpt")
      # resharded and saved without a step: the state bitwise that of tp=2
      "${mpirun[@]}" -np "$np" "${same[@]}" --max_steps 10 --output_dir "$dir/$name-saved" >"$dir/$name.log" 2>&1 ||
        { tail -3 "$dir/$name.log"; fail "$precision: resharding to $name"; }
      /usr/bin/python3 "$(dirname "$0")/checkpoint_state.py" "$ckpt" "$dir/$name-saved/checkpoints/step-00000010" \
        >"$dir/$name.cmp" || fail "$precision: $(cat "$dir/$name.cmp")"
      # 5 steps at the new layout: the losses of the tp=2 run within tol
      "${mpirun[@]}" -np "$np" "${same[@]}" --max_steps 15 --output_dir "$dir/$name" >"$dir/$name.log" 2>&1 ||
        { tail -3 "$dir/$name.log"; fail "$precision: continuing at $name"; }
      for step in 11 12 13 14 15; do
        got=$(loss_at "$dir/$name" $step) ref=$(loss_at "$dir/tp2" $step)
        close "$got" "$ref" "$tol" || fail "$precision: step $step loss $got at $name vs $ref at tp=2 (tolerance $tol)"
      done
      echo "ok: $precision tp=2 → $name: $(tr '\n' ';' <"$dir/$name.cmp" | grep -o '[a-z_]*: [0-9]* tensors, [0-9]* values bitwise equal' | paste -sd, -);" \
           "steps 11-15 losses within $tol (step 15: $got vs $ref)"
    done
    # and back: the tp=1 checkpoint resharded to tp=2 is the original bit for bit
    "${mpirun[@]}" -np 2 "${base[@]}" $flags --batch_size 2 --max_steps 10 --tensor_parallel_size 2 \
      --resume_ckpt "$dir/np1-tp1-zerotrue-saved/checkpoints/step-00000010" --output_dir "$dir/back" >/dev/null 2>&1 ||
      fail "$precision: tp=1 → tp=2"
    /usr/bin/python3 "$(dirname "$0")/checkpoint_state.py" "$ckpt" "$dir/back/checkpoints/step-00000010" >"$dir/back.cmp" ||
      fail "$precision: back at tp=2: $(cat "$dir/back.cmp")"
    echo "ok: $precision tp=2 → tp=1 → tp=2: state bitwise equal to the original"
  done
}

async_kill() {
  "${mpirun[@]}" -np 2 "${train[@]}" --tensor_parallel_size 2 --output_dir "$work/whole" >/dev/null 2>&1 || fail "uninterrupted"
  LLAMA2_TEST_HOOKS=slow_save=4 "${mpirun[@]}" -x LLAMA2_TEST_HOOKS -np 2 "${train[@]}" --tensor_parallel_size 2 \
    --checkpoint_freq 5 --output_dir "$work/run" >"$work/log" 2>&1 &
  local job=$! ckpt="$work/run/checkpoints"
  for _ in $(seq 600); do
    [[ -d "$ckpt/step-00000010.tmp" && "$(cat "$ckpt/latest" 2>/dev/null)" == step-00000005 ]] &&
      (( $(wc -l <"$work/run/metrics.jsonl") >= 12 )) && break
    sleep 0.05
  done
  [[ -d "$ckpt/step-00000010.tmp" && "$(cat "$ckpt/latest")" == step-00000005 ]] ||
    fail "never saw step 10's write in flight with latest at step 5: $(ls "$ckpt") latest=$(cat "$ckpt/latest" 2>&1)"
  pkill -KILL -f "^$bin train .*--output_dir $work/run"
  wait $job 2>/dev/null
  "${mpirun[@]}" -np 2 "${train[@]}" --tensor_parallel_size 2 --output_dir "$work/run" >"$work/log2" 2>&1 ||
    fail "rerun: $(grep -m3 "error" "$work/log2")"
  grep -q "resumed from .*step-00000005" "$work/log2" || fail "did not resume from step 5: $(grep resumed "$work/log2")"
  for step in $(seq 6 20); do
    [[ "$(loss_at "$work/run" "$step")" == "$(loss_at "$work/whole" "$step")" ]] || fail "step $step's loss differs"
  done
  echo "ok: SIGKILL during step 10's background write: resumed from step 5, losses 6-20 bitwise equal"
}

rollback() {
  "${mpirun[@]}" -np 2 "${train[@]}" --tensor_parallel_size 2 --checkpoint_freq 5 --keep_last 3 \
    --output_dir "$work/run" >/dev/null 2>&1 || fail "first pass"
  cp "$work/run/metrics.jsonl" "$work/first.jsonl"
  "${mpirun[@]}" -np 2 "${train[@]}" --tensor_parallel_size 2 --checkpoint_freq 5 --keep_last 3 \
    --resume_ckpt "$work/run/checkpoints/step-00000010" --output_dir "$work/run" >"$work/log" 2>&1 ||
    { tail -5 "$work/log"; fail "second pass from step 10"; }
  grep -q "rolled back to step 10: later checkpoints step-00000015, step-00000020 moved aside to .*/rolled-back-[0-9TZ]* (nothing deleted)" \
    "$work/log" || fail "no rollback line: $(grep -i roll "$work/log")"
  local aside
  aside=$(ls -d "$work"/run/checkpoints/rolled-back-*) || fail "no rolled-back directory"
  [[ -f "$aside/step-00000015/meta.json" && -f "$aside/step-00000020/meta.json" ]] || fail "the first pass's 15 and 20 are not in $aside"
  [[ -f "$work/run/checkpoints/step-00000020/meta.json" && -f "$work/run/checkpoints/step-00000015/meta.json" ]] ||
    fail "steps 15 and 20 were not saved again: $(ls "$work/run/checkpoints")"
  [[ $(cat "$work/run/checkpoints/latest") == step-00000020 ]] || fail "latest is $(cat "$work/run/checkpoints/latest")"
  for step in $(seq 11 20); do
    [[ "$(loss_at "$work/run" "$step")" == "$(grep "\"step\":$step," "$work/first.jsonl" | head -1 | grep -o '"loss":[^,}]*' | cut -d: -f2)" ]] ||
      fail "step $step's loss differs from the first pass"
  done
  echo "ok: rolled back to 10: 15 and 20 saved again, the first pass's in $(basename "$aside"), losses 11-20 bitwise equal"
}

corrupt() {
  "${mpirun[@]}" -np 2 "${train[@]}" --tensor_parallel_size 2 --output_dir "$work/base" --steps_this_run 2 >/dev/null 2>&1 || fail "base"
  good="$work/base/checkpoints/step-00000002"
  expect() {  # NAME FRAGMENT EDIT-COMMAND...: corrupt a copy, resume from it, expect status 2 + message, copy unchanged
    local name=$1 fragment=$2
    shift 2
    rm -rf "$work/$name" && cp -r "$good" "$work/$name" && (cd "$work/$name" && eval "$@")
    local before after
    before=$(cd "$work/$name" && find . -type f -exec md5sum {} + | sort)
    "${mpirun[@]}" -np 2 "${train[@]}" --tensor_parallel_size 2 --resume_ckpt "$work/$name" --output_dir "$work/out-$name" \
      >"$work/$name.log" 2>&1
    local status=$?
    after=$(cd "$work/$name" && find . -type f -exec md5sum {} + | sort)
    [[ $status -eq 2 ]] || { tail -5 "$work/$name.log"; fail "$name: status $status, expected 2"; }
    grep -qF -- "$fragment" "$work/$name.log" || { tail -5 "$work/$name.log"; fail "$name: message lacks '$fragment'"; }
    [[ "$before" == "$after" ]] || fail "$name: the checkpoint's files were modified"
    [[ ! -d "$work/out-$name/checkpoints" ]] || fail "$name: a new checkpoint was written"
    echo "ok: $name → status 2: $(grep -o "error: .*" "$work/$name.log" | head -1)"
  }
  expect missing_shard "rank-00001.safetensors: checkpoint shard is missing" rm rank-00001.safetensors
  expect bit_flip "checksum mismatch" 'printf "\x55" | dd of=rank-00000.safetensors bs=1 seek=5000 conv=notrunc status=none'
  expect truncated "truncated file" truncate -s -1000 rank-00001.safetensors
  expect other_config "keys differ: hidden_size, intermediate_size" 'sed -i "s/\"hidden_size\": 64/\"hidden_size\": 128/; s/\"intermediate_size\": 176/\"intermediate_size\": 352/" meta.json'
  expect unknown_version "format version 99; expected 1" 'sed -i "s/\"version\": 1/\"version\": 99/" meta.json'
  expect no_meta "not a checkpoint (no meta.json)" rm meta.json
}

"$case"
