#!/usr/bin/env bash
# A weighted blend of three corpora prepared from the bundled addresses (18th-19th century, 20th, 21st), on the
# binary. Usage: blend_test.sh CASE BINARY REPO_ROOT MPIRUN...   (CASE: blend)
#   - 12 steps of --data_dir 0.6 A 0.3 B 0.1 C at dp 1 with accumulation 2 vs 6 steps at dp 2 then resumed at dp 1:
#     losses within 1e-5 (the same samples; only the order of the gradient sums differs);
#   - metrics.jsonl's corpus_tokens at every step vs Megatron's greedy rule simulated here in awk (exact), and each
#     evaluation's val_loss = the weighted mean of its val_loss_per_corpus (1e-9);
#   - 0.998/0.001/0.001: the run completes and the log says the largest corpus is re-read.
source "$(dirname "$0")/script_lib.sh"
tok=$root/assets/tokenizer.model
mapfile -t files < <(ls "$root"/assets/sotu/*.txt | sort)
prepare() {  # NAME FILES...
  local name=$1
  shift
  "$bin" prepare-data --tokenizer "$tok" --input "$@" --val_fraction 0.1 --output_dir "$work/$name" \
    >"$work/$name.log" 2>&1 || fail "prepare-data $name: $(tail -2 "$work/$name.log")"
}
prepare old "${files[@]:0:12}"
prepare mid "${files[@]:120:8}"
prepare new "${files[@]:225:4}"
train=("$bin" train --config "$root/configs/tiny.json" --tokenizer "$tok" --seq_len 64 --warmup_steps 2 --lr 3e-3
       --log_interval 100)
blend=(--data_dir 0.6 "$work/old" 0.3 "$work/mid" 0.1 "$work/new" --max_steps 12 --eval_interval 6 --eval_iters 2)

"${train[@]}" "${blend[@]}" --batch_size 2 --grad_accum_usteps 2 --output_dir "$work/whole" >"$work/whole.log" 2>&1 ||
  fail "uninterrupted run: $(tail -3 "$work/whole.log")"
"${mpirun[@]}" -np 2 "${train[@]}" "${blend[@]}" --batch_size 2 --steps_this_run 6 --output_dir "$work/split" \
  >"$work/split.log" 2>&1 || fail "dp 2 run: $(tail -3 "$work/split.log")"
"${train[@]}" "${blend[@]}" --batch_size 2 --grad_accum_usteps 2 --output_dir "$work/split" >>"$work/split.log" 2>&1 ||
  fail "resumed at dp 1: $(tail -3 "$work/split.log")"
grep -q "resumed from .*step-00000006" "$work/split.log" || fail "did not resume from step 6"
losses() { grep -o '"step":[0-9]*\|"loss":[^,}]*' "$1/metrics.jsonl" | paste - - | awk '{ v[$1] = $2 } END { for (s in v) print s, v[s] }' | sort -t: -k2 -n; }
paste <(losses "$work/whole") <(losses "$work/split") | awk '
  { split($2, a, ":"); split($4, b, ":"); d = a[2] - b[2]; if (d < 0) d = -d; r = d / b[2]; if (r > worst) worst = r; n++ }
  END { printf "%d steps, worst relative difference %.3g\n", n, worst; exit !(n == 12 && worst <= 1e-5) }' ||
  fail "losses of the dp 2 → dp 1 resumed run differ from the uninterrupted run's"

# Megatron's rule by hand: sample g goes to the corpus with the largest w·(g+1) − count (the first on a tie); the
# tokens of corpus c after step s: its count of the first 4·s samples × seq_len.
expected=$(awk 'BEGIN { w[0] = 0.6; w[1] = 0.3; w[2] = 0.1
  for (g = 0; g < 48; g++) { best = -1; for (c = 0; c < 3; c++) { e = w[c] * (g + 1) - n[c]; if (best < 0 || e > be) { best = c; be = e } }
    n[best]++; if ((g + 1) % 4 == 0) printf "%d %d %d %d\n", (g + 1) / 4, n[0] * 64, n[1] * 64, n[2] * 64 } }')
got=$(grep -o '"corpus_tokens":{[^}]*}\|"step":[0-9]*' "$work/whole/metrics.jsonl" | paste - - |
  sed -E 's/"corpus_tokens":\{"mid":([0-9]+),"new":([0-9]+),"old":([0-9]+)\}\t"step":([0-9]+)/\4 \3 \1 \2/')
[[ "$got" == "$expected" ]] || fail "corpus_tokens per step (step old mid new):"$'\n'"$got"$'\n'"expected:"$'\n'"$expected"
grep '"val_loss"' "$work/whole/metrics.jsonl" | grep -o '"val_loss":[^,}]*\|"val_loss_per_corpus":{[^}]*}' | paste - - |
  sed -E 's/"val_loss":([^\t]*)\t"val_loss_per_corpus":\{"mid":([^,]*),"new":([^,]*),"old":([^}]*)\}/\1 \4 \2 \3/' |
  awk '{ blended = (0.6 * $2 + 0.3 * $3 + 0.1 * $4); d = $1 - blended; if (d < 0) d = -d; n++; if (d > 1e-9 * $1) bad++ }
       END { exit !(n == 2 && bad == 0) }' || fail "val_loss is not the weighted mean of the per-corpus losses"

"${train[@]}" --data_dir 0.998 "$work/old" 0.001 "$work/mid" 0.001 "$work/new" --batch_size 4 --max_steps 200 \
  --output_dir "$work/extreme" >"$work/extreme.log" 2>&1 || fail "0.998/0.001/0.001: $(tail -3 "$work/extreme.log")"
grep -q "data: old (weight 0.9980, .*(re-read, each epoch in a new order)" "$work/extreme.log" ||
  fail "no re-read line for the 0.998 corpus: $(grep 'data:' "$work/extreme.log")"
echo "ok: 12 steps at dp 1 equal 6 at dp 2 + 6 resumed at dp 1 (1e-5); corpus tokens at step 12:" \
     "$(tail -1 <<<"$got"); val_loss the weighted mean; 0.998/0.001/0.001 ran 200 steps:" \
     "$(grep -o 'data: old (weight 0.9980.*' "$work/extreme.log" | cut -c1-160)"
