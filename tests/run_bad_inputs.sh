#!/usr/bin/env bash
# Runs every row of the hostile-input table against the binary: each must exit with its status, print its
# message fragment ($W expanded) on stderr (a row expecting status 0 checks a warning: stdout, the log, counts too), and leave
# no core dump. Usage: run_bad_inputs.sh BINARY TABLE
set -u
export BIN=$(realpath "$1")
table=$(realpath "$2")
cd "$(dirname "$table")/.."  # the repository root: arguments may name configs/... and assets/...
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
while IFS=$'\t' read -r name status fragment setup args; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  export W="$work/$name"
  mkdir -p "$W"
  if [[ "$setup" != "-" ]] && ! bash -c "$setup" >"$W/setup.log" 2>&1; then
    failed=$((failed + 1)); echo "FAIL $name: setup failed: $(tail -3 "$W/setup.log")"; continue
  fi
  read -r -a argv <<<"$(envsubst '$W $BIN' <<<"$args")"
  fragment=$(envsubst '$W' <<<"$fragment")
  (ulimit -c 0 && timeout 120 "$BIN" "${argv[@]}" >"$W/.stdout" 2>"$W/.stderr")
  got=$?
  output=("$W/.stderr")
  [[ $status -eq 0 ]] && output+=("$W/.stdout")
  if [[ $got -eq $status ]] && cat "${output[@]}" | grep -qF -- "$fragment" && ! ls "$W"/core* >/dev/null 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL $name: status $got (expected $status); stderr:"
    sed "s/^/    /" "$W/.stderr" | grep -v "^    \[" | head -5
    echo "    expected fragment: $fragment"
  fi
done <"$table"
echo "bad inputs: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
