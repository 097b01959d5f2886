#!/usr/bin/env bash
# Runs every row of a bad-input table against the binary: each must exit with its status, print its
# message fragment on stderr, and leave no core dump. Usage: run_bad_inputs.sh BINARY TABLE
set -u
binary=$(realpath "$1") table=$(realpath "$2")
cd "$(dirname "$table")/.."  # the repository root: arguments may name configs/...
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
while IFS=$'\t' read -r name status fragment config args; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  cmd=("$binary")
  read -r -a extra <<<"$args"
  cmd+=("${extra[@]}")
  if [[ "$config" != "-" ]]; then
    printf '%s' "$config" >"$work/$name.json"
    cmd+=(--config "$work/$name.json")
  fi
  (ulimit -c 0 && timeout 60 "${cmd[@]}" >"$work/out" 2>"$work/err")
  got=$?
  if [[ $got -eq $status ]] && grep -qF -- "$fragment" "$work/err"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL $name: status $got (expected $status); stderr:"
    sed 's/^/    /' "$work/err" | head -5
    echo "    expected fragment: $fragment"
  fi
done <"$table"
echo "bad inputs: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
