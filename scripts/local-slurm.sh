#!/usr/bin/env bash
# A real single-node Slurm on this machine (munge + slurmctld + slurmd from Debian's slurm-wlm), for tests
# and for users without a cluster. State lives in $LOCAL_SLURM_DIR (default /tmp/llama2-local-slurm).
#   scripts/local-slurm.sh start   → starts it; prints the line to `eval` (export SLURM_CONF=...)
#   scripts/local-slurm.sh stop    → stops it and removes the state
set -euo pipefail
state=${LOCAL_SLURM_DIR:-/tmp/llama2-local-slurm}
conf=$state/slurm.conf

start() {
  for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null || { echo "local-slurm: $tool not found; run scripts/install-deps.sh" >&2; exit 1; }
  done
  stop >/dev/null 2>&1 || true
  mkdir -p "$state"/{munge,ctld,spool}
  chmod 700 "$state/munge"
  dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$state/munge/munge.key"
  local user host cpus mem
  user=$(id -un)
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  munged --force --key-file="$state/munge/munge.key" --socket="$state/munge/munge.socket" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" --seed-file="$state/munge/seed"
  cat >"$conf" <<CONF
ClusterName=llama2local
SlurmctldHost=$host
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge/munge.socket
CredType=cred/munge
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmctldPort=${LOCAL_SLURM_PORT:-6917}
SlurmdPort=$(( ${LOCAL_SLURM_PORT:-6917} + 1 ))
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
KillWait=30
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  export SLURM_CONF=$conf
  slurmctld -i
  slurmd
  for _ in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -qE "^(idle|mixed|allocated)" && break
    sleep 0.5
  done
  sinfo -h -o %T | grep -qE "^(idle|mixed|allocated)" ||
    { echo "local-slurm: the node did not come up; see $state/*.log" >&2; tail -5 "$state"/slurmd.log >&2; exit 1; }
  echo "export SLURM_CONF=$conf"
}

stop() {
  for pidfile in "$state/slurmd.pid" "$state/slurmctld.pid" "$state/munge/munged.pid"; do
    [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  sleep 1
  rm -rf "$state"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
