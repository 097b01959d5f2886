# shellcheck shell=bash
# Sourced by the benchmarks. launch_local RANKS LOG COMMAND...: COMMAND on RANKS local ranks (mpirun, unbound, as
# root where need be) or, for 1, directly; its output to LOG.
launch_local() {
  local ranks=$1 log=$2 root=()
  shift 2
  [[ $(id -u) -eq 0 ]] && root=(--allow-run-as-root)
  if (( ranks > 1 )); then
    mpirun -np "$ranks" --oversubscribe --bind-to none "${root[@]}" "$@" >"$log" 2>&1
  else
    "$@" >"$log" 2>&1
  fi
}
