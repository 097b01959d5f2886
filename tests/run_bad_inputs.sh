#!/usr/bin/env bash
# Runs every row of the hostile-input table against the binary: each must exit with its status, print its
# message fragment ($W expanded) on stderr (a row expecting status 0 checks a warning: stdout, the log, counts
# too), and leave no core dump. Rows are independent (each in its own $W) and mostly the binary's start-up, so
# they run BAD_INPUTS_JOBS at a time (default: one per core); verdicts print in the table's order.
# A `train` row without --output_dir fails unrun: it would write output/ in the repository, shared by the rows.
# Usage: run_bad_inputs.sh BINARY TABLE
set -u
BIN=$(realpath "$1")
export BIN
table=$(realpath "$2")
parallel=${BAD_INPUTS_JOBS:-$(nproc)}
cd "$(dirname "$table")/.." || exit 1  # the repository root: arguments may name configs/... and assets/...
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck disable=SC2016  # envsubst, not the shell, expands the variables named in single quotes
run_row() {  # NAME STATUS FRAGMENT SETUP ARGS → $W/.verdict: "pass", or the failure's lines
  local name=$1 status=$2 fragment=$3 setup=$4 args=$5 got argv output
  export W="$work/$name"
  mkdir -p "$W"
  if [[ "$setup" != "-" ]] && ! bash -c "$setup" >"$W/setup.log" 2>&1; then
    echo "FAIL $name: setup failed: $(tail -3 "$W/setup.log")" >"$W/.verdict"
    return
  fi
  read -r -a argv <<<"$(envsubst '$W $BIN' <<<"$args")"
  fragment=$(envsubst '$W' <<<"$fragment")
  if [[ "${argv[0]}" == train && " ${argv[*]}" != *" --output_dir"* ]]; then  # else ./output in the repository
    echo "FAIL $name: a train row needs --output_dir (under \$W)" >"$W/.verdict"
    return
  fi
  (ulimit -c 0 && timeout 120 "$BIN" "${argv[@]}" >"$W/.stdout" 2>"$W/.stderr")
  got=$?
  output=("$W/.stderr")
  [[ $status -eq 0 ]] && output+=("$W/.stdout")
  if [[ $got -eq $status ]] && cat "${output[@]}" | grep -qF -- "$fragment" && ! ls "$W"/core* >/dev/null 2>&1; then
    echo pass >"$W/.verdict"
  else
    { echo "FAIL $name: status $got (expected $status); stderr:"
      sed "s/^/    /" "$W/.stderr" | grep -v "^    \[" | head -5
      echo "    expected fragment: $fragment"; } >"$W/.verdict"
  fi
}

names=()
while IFS=$'\t' read -r name status fragment setup args; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  names+=("$name")
  while (( $(jobs -rp | wc -l) >= parallel )); do wait -n; done
  run_row "$name" "$status" "$fragment" "$setup" "$args" </dev/null &
done <"$table"
wait
passed=0 failed=0
for name in "${names[@]}"; do
  if [[ "$(cat "$work/$name/.verdict" 2>/dev/null)" == pass ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    cat "$work/$name/.verdict" 2>/dev/null || echo "FAIL $name: no verdict"
  fi
done
echo "bad inputs: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
