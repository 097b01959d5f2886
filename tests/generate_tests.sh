#!/usr/bin/env bash
# `generate` on real runs of the binary. Usage: generate_tests.sh CASE BINARY REPO SOTU_DATA MPIRUN...
#   layouts: a tiny model trained 40 steps on the SOTU corpus at tp=2 with SP; greedy generation from its checkpoint
#            at tp=1 equals tp=2's, token for token, and the sample the training run wrote at step 40 (tp=2, SP,
#            the model in memory); its Hugging Face export with --tokenizer (tokenizer.model
#            bundled, so no --tokenizer given) generates the same tokens; seeded sampling repeats itself, at tp=1
#            and tp=2; the exported tokenizer files name the tokenizer's own BOS/EOS pieces (spm_export_vocab).
source "$(dirname "$0")/script_lib.sh"
data=${mpirun[0]}
mpirun=("${mpirun[@]:1}")
prompt="The state of the union is"

layouts() {
  "${mpirun[@]}" -np 2 "$bin" train --config "$root/configs/tiny.json" --tensor_parallel_size 2 --data_dir "$data" \
    --tokenizer "$root/assets/tokenizer.model" --batch_size 4 --seq_len 64 --max_steps 40 --warmup_steps 4 --lr 3e-3 \
    --sample_interval 20 --sample_prompt "$prompt" --sample_tokens 24 \
    --output_dir "$work/run" >"$work/train.log" 2>&1 || fail "training: $(tail -3 "$work/train.log")"
  local from_ckpt=(generate --checkpoint "$work/run/checkpoints" --tokenizer "$root/assets/tokenizer.model"
                   --prompt "$prompt" --max_new_tokens 24 --json)
  tokens() { /usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read())["tokens"])' "$1"; }
  "$bin" "${from_ckpt[@]}" --temperature 0 >"$work/tp1.json" 2>"$work/tp1.err" || fail "tp1: $(tail -2 "$work/tp1.err")"
  "${mpirun[@]}" -np 2 "$bin" "${from_ckpt[@]}" --temperature 0 --tensor_parallel_size 2 >"$work/tp2.json" \
    2>"$work/tp2.err" || fail "tp2: $(tail -2 "$work/tp2.err")"
  [[ "$(tokens "$work/tp1.json")" != "[]" ]] || fail "no tokens generated: $(cat "$work/tp1.json")"
  [[ "$(tokens "$work/tp1.json")" == "$(tokens "$work/tp2.json")" ]] ||
    fail "tp=2 differs from tp=1: $(cat "$work/tp1.json") vs $(cat "$work/tp2.json")"
  # The sample the tp=2 (SP) run wrote at its last step, from the model in memory, is the same greedy text.
  local last_sample
  last_sample=$(/usr/bin/python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1])][-1]["sample"])' \
    "$work/run/metrics.jsonl")
  [[ "$last_sample" == "$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["text"])' "$work/tp1.json")" ]] ||
    fail "step 40's sample while training differs from generate: '$last_sample' vs $(cat "$work/tp1.json")"

  "$bin" export-hf --checkpoint "$work/run/checkpoints" --output "$work/hf" --tokenizer "$root/assets/tokenizer.model" \
    >"$work/export.log" 2>&1 || fail "export: $(tail -2 "$work/export.log")"
  cmp -s "$work/hf/tokenizer.model" "$root/assets/tokenizer.model" || fail "tokenizer.model not copied"
  local bos eos
  bos=$(spm_export_vocab --model="$root/assets/tokenizer.model" | sed -n 2p | cut -f1)
  eos=$(spm_export_vocab --model="$root/assets/tokenizer.model" | sed -n 3p | cut -f1)
  /usr/bin/python3 - "$work/hf" "$bos" "$eos" <<'PY' || fail "tokenizer files"
import json, sys
d, bos, eos = sys.argv[1:]
special = json.load(open(d + "/special_tokens_map.json"))
config = json.load(open(d + "/tokenizer_config.json"))
generation = json.load(open(d + "/generation_config.json"))
assert special["bos_token"] == bos and special["eos_token"] == eos, special
assert config["tokenizer_class"] == "LlamaTokenizer" and config["bos_token"] == bos, config
assert generation["bos_token_id"] == 1 and generation["eos_token_id"] == 2, generation
PY
  "$bin" generate --model_path "$work/hf" --prompt "$prompt" --max_new_tokens 24 --json --temperature 0 \
    >"$work/hf.json" 2>"$work/hf.err" || fail "from the HF export: $(tail -2 "$work/hf.err")"
  [[ "$(tokens "$work/hf.json")" == "$(tokens "$work/tp1.json")" ]] ||
    fail "the HF export differs from the checkpoint: $(cat "$work/hf.json") vs $(cat "$work/tp1.json")"

  local sampled=(--temperature 1 --top_k 50 --top_p 0.95 --seed 11)
  "$bin" "${from_ckpt[@]}" "${sampled[@]}" >"$work/s1.json" 2>/dev/null || fail "sampling"
  "$bin" "${from_ckpt[@]}" "${sampled[@]}" >"$work/s2.json" 2>/dev/null || fail "sampling again"
  "${mpirun[@]}" -np 2 "$bin" "${from_ckpt[@]}" "${sampled[@]}" --tensor_parallel_size 2 >"$work/s3.json" \
    2>/dev/null || fail "sampling at tp=2"
  [[ "$(tokens "$work/s1.json")" == "$(tokens "$work/s2.json")" ]] || fail "the same seed gave other tokens"
  [[ "$(tokens "$work/s1.json")" == "$(tokens "$work/s3.json")" ]] || fail "tp=2 sampled other tokens"
  echo "ok: greedy $(cat "$work/tp1.json" | cut -c1-300)"
  echo "ok: sampled $(cat "$work/s1.json" | cut -c1-300)"
  echo "ok: $(cat "$work/tp1.err")"
}

"$case"
