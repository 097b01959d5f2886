#!/usr/bin/env bash
# Runs a command that must fail promptly: exit non-zero within SECONDS (a time-out counts as a hang)
# and print FRAGMENT on stderr. Usage: expect_job_fails.sh SECONDS FRAGMENT COMMAND...
set -u
limit=$1 fragment=$2
shift 2
err=$(mktemp)
trap 'rm -f "$err"' EXIT
start=$(date +%s)
timeout "$limit" "$@" 2>"$err" >/dev/null
status=$?
elapsed=$(( $(date +%s) - start ))
echo "status $status after ${elapsed} s"
if [[ $status -eq 124 ]]; then echo "FAIL: still running after $limit s (hang)"; exit 1; fi
if [[ $status -eq 0 ]]; then echo "FAIL: exited 0"; exit 1; fi
if ! grep -qF -- "$fragment" "$err"; then echo "FAIL: stderr lacks '$fragment':"; head -20 "$err"; exit 1; fi
echo "ok: failed with status $status, message found"
