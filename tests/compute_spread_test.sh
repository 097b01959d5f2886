#!/usr/bin/env bash
# The straggler report on a real 2-rank run: every step's metrics carry the fastest and the slowest rank's compute
# time (its step less its waits in collectives), 0 < min <= max. Usage: compute_spread_test.sh CASE BINARY REPO_ROOT MPIRUN... (CASE unused)
source "$(dirname "$0")/script_lib.sh"
"${mpirun[@]}" -np 2 "$bin" train --config "$root/configs/tiny.json" --synthetic_data --seq_len 32 --max_steps 5 \
  --output_dir "$work/run" >"$work/log" 2>&1 || fail "$(tail -3 "$work/log")"
/usr/bin/python3 - "$work/run/metrics.jsonl" <<'PY' || fail "compute spread missing or inconsistent"
import json, sys
steps = [json.loads(line) for line in open(sys.argv[1])]
assert len(steps) == 5, len(steps)
for m in steps:
    assert 0 < m["compute_s_min"] <= m["compute_s_max"], m
print("ok: compute_s_min/max per step:", [(round(m["compute_s_min"], 4), round(m["compute_s_max"], 4)) for m in steps])
PY
