#!/usr/bin/env bash
# The straggler report on a real 2-rank run (dp 2) whose rank 1 computes 0.3 s longer in every micro-step (test
# hook): every step's compute_s_max − compute_s_min is that 0.3 s within [0.2, 0.6] s (the rest is the two ranks'
# own jitter on 2 shared cores), and the straggler line names rank 1.
# Usage: compute_spread_test.sh CASE BINARY REPO_ROOT MPIRUN... (CASE unused)
source "$(dirname "$0")/script_lib.sh"
LLAMA2_TEST_HOOKS="compute_delay=1:0.3" "${mpirun[@]}" -x LLAMA2_TEST_HOOKS -np 2 "$bin" train \
  --config "$root/configs/tiny.json" --synthetic_data --seq_len 32 --max_steps 5 --output_dir "$work/run" \
  >"$work/log" 2>&1 || fail "$(tail -3 "$work/log")"
/usr/bin/python3 - "$work/run/metrics.jsonl" <<'PY' || fail "compute spread is not the injected 0.3 s"
import json, sys
steps = [json.loads(line) for line in open(sys.argv[1])]
assert len(steps) == 5, len(steps)
spreads = [m["compute_s_max"] - m["compute_s_min"] for m in steps]
print("compute spread per step (s):", [round(s, 3) for s in spreads])
assert all(0.2 <= s <= 0.6 for s in spreads), spreads
PY
grep -q "straggler: rank 1 computed" "$work/log" || fail "no straggler line names rank 1: $(grep straggler "$work/log" | head -2)"
echo "ok"
