#!/usr/bin/env bash
# export-gguf on a real run. Usage: gguf_tests.sh CASE BINARY REPO DIR SOTU_DATA MPIRUN...
#   model:     a tiny model trained 200 steps on the SOTU corpus at tp=2 (its checkpoint in DIR), exported as GGUF in
#              f32, f16, bf16 and q8_0 and with export-hf; tests/gguf_check.py (an independent numpy reader) checks
#              each file's metadata, tensor names, shapes, types, alignment and bytes against the HF export and
#              Debian's spm_export_vocab; export-gguf --model_path of the HF export writes the same bytes.
#   llama_cpp: llama.cpp itself (node-llama-cpp's prebuilt CPU build, scripts/fetch-assets.sh) runs the files. Its
#              greedy continuation of a prompt equals `generate --temperature 0` for 24 tokens at least (up to the
#              first near-tie, top-2 logits within 1e-3), f32 and f16; its loss on a held-out text (a validation
#              document) equals `eval`'s within 5e-4 (f32, f16); q8_0's perplexity is within 2% of f32's. Skipped
#              (status 77) when node-llama-cpp could not be installed.
source "$(dirname "$0")/script_lib.sh"
dir=${mpirun[0]} data=${mpirun[1]}
mpirun=("${mpirun[@]:2}")
tokenizer="$root/assets/tokenizer.model"
py=/usr/bin/python3

model() {
  rm -rf "$dir" && mkdir -p "$dir"
  "${mpirun[@]}" -np 2 "$bin" train --config "$root/configs/tiny.json" --tensor_parallel_size 2 --data_dir "$data" \
    --tokenizer "$tokenizer" --batch_size 16 --seq_len 128 --max_steps 200 --warmup_steps 10 --lr 1e-2 \
    --output_dir "$dir/run" >"$dir/train.log" 2>&1 || fail "training: $(tail -3 "$dir/train.log")"
  "$bin" export-hf --checkpoint "$dir/run/checkpoints" --output "$dir/hf" >/dev/null 2>&1 || fail "export-hf"
  spm_export_vocab --model="$tokenizer" >"$dir/vocab.tsv" || fail "spm_export_vocab"
  for dtype in f32 f16 bf16 q8_0; do
    "$bin" export-gguf --checkpoint "$dir/run/checkpoints" --tokenizer "$tokenizer" --dtype "$dtype" \
      --output "$dir/model-$dtype.gguf" >"$dir/export-$dtype.log" 2>&1 || fail "export $dtype: $(cat "$dir/export-$dtype.log")"
    cat "$dir/export-$dtype.log"
    "$py" "$root/tests/gguf_check.py" "$dir/model-$dtype.gguf" "$dtype" "$dir/hf" "$dir/vocab.tsv" || exit 1
  done
  "$bin" export-gguf --model_path "$dir/hf" --tokenizer "$tokenizer" --dtype f32 --output "$work/from-hf.gguf" \
    >/dev/null 2>&1 || fail "export from the HF directory"
  cmp "$work/from-hf.gguf" "$dir/model-f32.gguf" || fail "the HF directory's GGUF differs from the checkpoint's"
  echo "ok: the HF export's GGUF is byte-identical to the checkpoint's"
}

# Comma-separated ids of BOS + the text of file $1, by Debian's spm_encode.
ids_of() { echo "1,$(spm_encode --model="$tokenizer" --output_format=id <"$1" | tr '\n' ' ' | sed 's/ *$//' | tr ' ' ',')"; }
field() { "$py" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

llama_cpp() {
  local engine="$root/assets/node-llama-cpp"
  if [[ ! -f "$engine/node_modules/node-llama-cpp/package.json" ]]; then
    echo "SKIPPED: node-llama-cpp is not installed in $engine (npm's registry unreachable when scripts/fetch-assets.sh ran)"
    exit 77
  fi
  local run=(node "$root/tests/llama_cpp_run.mjs" "$engine")
  local prompt="The President of the United States"
  printf '%s' "$prompt" >"$work/prompt.txt"
  local prompt_ids ours
  prompt_ids=$(ids_of "$work/prompt.txt")
  ours=$("$bin" generate --checkpoint "$dir/run/checkpoints" --tokenizer "$tokenizer" --prompt "$prompt" \
    --max_new_tokens 32 --temperature 0 --json 2>/dev/null) || fail "generate"
  echo "generate: $ours"
  for dtype in f32 f16; do
    local theirs
    theirs=$("${run[@]}" "$dir/model-$dtype.gguf" greedy "$prompt_ids" 32) || fail "llama.cpp greedy $dtype"
    "$py" - "$ours" "$theirs" "$dtype" <<'PY' || exit 1
import json, sys
ours, theirs, dtype = json.loads(sys.argv[1])["tokens"], json.loads(sys.argv[2]), sys.argv[3]
gaps = theirs["gaps"]
compared = next((i for i, g in enumerate(gaps) if g <= 1e-3), len(gaps))  # up to the first near-tie
same = next((i for i in range(compared) if ours[i] != theirs["tokens"][i]), compared)
print(f"llama.cpp {dtype}: {theirs['tokens']}, smallest top-2 gap {min(gaps):.4f}, "
      f"its own sampler {'agrees' if theirs['sampled'] == theirs['tokens'] else 'differs'}, "
      f"{theirs['tokens_per_s']:.1f} tokens/s")
if same < compared or compared < 24:
    sys.exit(f"FAIL: llama.cpp {dtype} agrees with generate for {same} tokens (compared {compared}): "
             f"{theirs['tokens']} vs {ours}")
PY
  done

  # Held-out text: the first 1200 tokens of the validation split's first document, as text.
  "$py" - "$data/validation-00000.bin" <<'PY' >"$work/heldout.ids"
import struct, sys
b = open(sys.argv[1], "rb").read()
n, width = struct.unpack_from("<Q", b, 24)[0], struct.unpack_from("<I", b, 12)[0]
ids = struct.unpack_from(f"<{n}{'H' if width == 2 else 'I'}", b, 64)
print(" ".join(map(str, ids[1:ids.index(2)][:1200])))
PY
  spm_decode --model="$tokenizer" --input_format=id <"$work/heldout.ids" >"$work/heldout.txt" || fail "spm_decode"
  local eval_out ids ppl_f32=""
  eval_out=$("$bin" eval --checkpoint "$dir/run/checkpoints" --tokenizer "$tokenizer" --text "$work/heldout.txt" \
    --seq_len 128 2>/dev/null) || fail "eval"
  echo "eval: $eval_out"
  ids=$(ids_of "$work/heldout.txt")
  for dtype in f32 f16 q8_0; do
    local theirs
    theirs=$("${run[@]}" "$dir/model-$dtype.gguf" perplexity "$ids" 128) || fail "llama.cpp perplexity $dtype"
    echo "llama.cpp $dtype ($(stat -c %s "$dir/model-$dtype.gguf") bytes): $theirs"
    [[ $dtype == f32 ]] && ppl_f32=$(field "$theirs" perplexity)
    "$py" - "$eval_out" "$theirs" "$dtype" "$ppl_f32" <<'PY' || exit 1
import json, sys
ours, theirs, dtype, ppl_f32 = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], float(sys.argv[4])
if theirs["tokens"] != ours["tokens"]:
    sys.exit(f"FAIL: llama.cpp scored {theirs['tokens']} targets, eval {ours['tokens']}")
if dtype == "q8_0":
    if abs(theirs["perplexity"] / ppl_f32 - 1) > 0.02:
        sys.exit(f"FAIL: q8_0 perplexity {theirs['perplexity']:.4f} vs f32's {ppl_f32:.4f}: over 2% apart")
elif abs(theirs["loss"] - ours["loss"]) > 5e-4:
    sys.exit(f"FAIL: llama.cpp {dtype} loss {theirs['loss']:.6f} vs eval's {ours['loss']:.6f}: over 5e-4 apart")
PY
  done
  echo "ok"
}

"$case"
