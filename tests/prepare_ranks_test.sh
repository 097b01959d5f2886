#!/usr/bin/env bash
# prepare-data on several ranks writes the corpus one rank writes. Usage: prepare_ranks_test.sh CASE BINARY REPO MPIRUN...
#   ranks: the bundled addresses as .txt files plus the same as one .jsonl (11 MB, cut into 1 MiB pieces): 2 ranks
#          (mpirun) vs 1: every shard and index.json byte-identical; a malformed line in the middle of the .jsonl
#          (line 150, in rank 1's share) → status 2 naming the file and line 150, and no index.json (no corpus)
source "$(dirname "$0")/script_lib.sh"
/usr/bin/python3 "$(dirname "$0")/sotu_as_jsonl.py" "$root/assets/sotu" "$work/docs.jsonl"
args=(prepare-data --tokenizer "$root/assets/tokenizer.model" --input "$root/assets/sotu" "$work/docs.jsonl"
      --piece_mib 1 --val_fraction 0.05)
"$bin" "${args[@]}" --output_dir "$work/one" >"$work/one.log" 2>&1 || fail "1 rank: $(tail -2 "$work/one.log")"
"${mpirun[@]}" -np 2 "$bin" "${args[@]}" --output_dir "$work/two" >"$work/two.log" 2>&1 ||
  fail "2 ranks: $(tail -2 "$work/two.log")"
grep -q "prepare-data (rank 1 of 2): .* MB" "$work/two.log" || fail "rank 1 reported no share of the work"
diff -r "$work/one" "$work/two" >/dev/null || fail "the 2-rank corpus differs: $(diff -rq "$work/one" "$work/two" | head -3)"

sed -i '150s/.*/{"text": broken/' "$work/docs.jsonl"
"${mpirun[@]}" -np 2 "$bin" "${args[@]}" --output_dir "$work/bad" >"$work/bad.log" 2>&1
status=$?
[[ $status -eq 2 ]] || fail "status $status for a malformed line, expected 2"
grep -q "docs.jsonl: line 150: malformed JSON" "$work/bad.log" || fail "no line naming docs.jsonl line 150: $(grep error "$work/bad.log")"
[[ ! -e "$work/bad/index.json" ]] || fail "a corpus (index.json) was left after the error"
echo "ok: 2 ranks = 1 rank byte for byte ($(ls "$work/two" | tr '\n' ' ')); $(grep -o 'rank 1 of 2): [0-9.]*/[0-9.]* MB' "$work/two.log" | tail -1);" \
     "$(grep -o 'error: .*' "$work/bad.log" | head -1 | cut -c1-120)"
