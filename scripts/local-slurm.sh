#!/usr/bin/env bash
# A real Slurm on this machine (munge + slurmctld + slurmd from Debian's slurm-wlm), for tests and for users without
# a cluster. State lives in $LOCAL_SLURM_DIR (default /tmp/llama2-local-slurm); ports from $LOCAL_SLURM_PORT.
#   scripts/local-slurm.sh start [--nodes N] → starts it; prints the line to `eval` (export SLURM_CONF=...)
#   scripts/local-slurm.sh stop              → stops it and removes everything it made
#   scripts/local-slurm.sh revive I          → node I healthy again after a test killed, stopped or cut it
# One node (the default) is this host itself. N ≥ 2 nodes are N network + UTS + mount namespaces named l2n1..l2nN,
# each with its own hostname and address on a private bridge made for them (LOCAL_SLURM_NET, default 10.213.77:
# the bridge is .1, node i is .(i+1)), one slurmd each; slurmctld runs on the host at the bridge address, so
# sbatch, srun and sinfo work from the host as from a cluster's head node. The host's filesystem is the shared
# filesystem; each node gets its own TmpFS (a per-node directory mounted at one path in its mount namespace) so
# PMIx's client directories do not collide. `tc` or `ip link set` on a node's link (l2vI on the host) makes a slow
# or cut network.
set -euo pipefail
state=${LOCAL_SLURM_DIR:-/tmp/llama2-local-slurm}
conf=$state/slurm.conf
net=${LOCAL_SLURM_NET:-10.213.77}
port=${LOCAL_SLURM_PORT:-6917}
bridge=l2br$(( port % 10000 ))  # one bridge per port, so two clusters (tests) do not share one
hosts_tag="# llama2-local-slurm $state"

die() { echo "local-slurm: $*" >&2; exit 1; }


write_conf() {  # NODES HOST CPUS MEM (MiB per node)
  local nodes=$1 host=$2 cpus=$3 mem=$4
  local ctld_host=$host node_lines names
  if (( nodes > 1 )); then
    ctld_host="$host($net.1)"
    node_lines=$(for i in $(seq 1 "$nodes"); do
      echo "NodeName=l2n$i NodeAddr=$net.$(( i + 1 )) NodeHostname=l2n$i CPUs=$cpus RealMemory=$mem State=UNKNOWN"
    done)
    names="l2n[1-$nodes]"
  else
    node_lines="NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN"
    names=$host
  fi
  cat >"$conf" <<CONF
ClusterName=llama2local
SlurmctldHost=$ctld_host
SlurmUser=$(id -un)
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
SlurmdSpoolDir=$state/spool/%n
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd-%n.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd-%n.log
TmpFS=$state/nodetmp
SlurmctldPort=$port
SlurmdPort=$(( port + 1 ))
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
KillWait=30
SlurmdTimeout=30
MessageTimeout=10
$node_lines
PartitionName=local Nodes=$names Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
}

# Node i: a namespace with a veth to the bridge, its address, its hostname, its TmpFS, its slurmd.
start_node() {
  local i=$1 ns=l2n$1
  ip netns add "$ns"
  ip link add "l2v$i" type veth peer name eth0 netns "$ns"
  ip link set "l2v$i" master "$bridge" up
  ip -n "$ns" addr add "$net.$(( i + 1 ))/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" route add default via "$net.1"
  mkdir -p "$state/spool/$ns" "$state/tmp/$ns"
  start_slurmd "$i"
}

# `ip netns exec` would remount /sys (slurmd then finds no cgroup fs): enter the network namespace only, and give
# slurmd a UTS namespace (its hostname) and a mount namespace (its TmpFS) of its own.
start_slurmd() {
  local ns=l2n$1
  nsenter --net="/run/netns/$ns" unshare --uts --mount --propagation private \
    bash -c "hostname $ns && mount --bind '$state/tmp/$ns' '$state/nodetmp' && exec slurmd -N $ns"
}

# Node i back to health after a test broke it: whatever runs in it killed, its link up and unshaped, its slurmd
# started again and the node resumed.
revive() {
  local i=${1:?revive needs a node number} ns=l2n$1
  export SLURM_CONF=$conf
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  tc qdisc del dev "l2v$i" root 2>/dev/null || true
  ip link set "l2v$i" up
  sleep 0.5
  start_slurmd "$i"
  for _ in $(seq 120); do
    scontrol update nodename="$ns" state=resume >/dev/null 2>&1 || true
    sinfo -h -n "$ns" -o %T 2>/dev/null | grep -qE "^(idle|mixed|allocated)$" && return 0
    sleep 0.5
  done
  die "node $ns did not come back: $(sinfo -h -n "$ns" -o '%T %E')"
}

start() {
  local nodes=1
  [[ "${1:-}" == "--nodes" ]] && nodes=${2:?--nodes needs a number}
  [[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "--nodes = $nodes; expected a positive integer"
  for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null || die "$tool not found; run scripts/install-deps.sh"
  done
  stop >/dev/null 2>&1 || true
  mkdir -p "$state"/{munge,ctld,spool,nodetmp}
  echo "$nodes" >"$state/nodes"
  chmod 700 "$state/munge"
  dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$state/munge/munge.key"
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( ($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024) / nodes ))
  munged --force --key-file="$state/munge/munge.key" --socket="$state/munge/munge.socket" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" --seed-file="$state/munge/seed"
  write_conf "$nodes" "$host" "$cpus" "$mem"
  export SLURM_CONF=$conf
  if (( nodes > 1 )); then
    ip link add "$bridge" type bridge
    ip addr add "$net.1/24" dev "$bridge"
    ip link set "$bridge" up
    # Bridged frames are not sent through the host's packet filter (this cluster's traffic is its own).
    [[ -w /proc/sys/net/bridge/bridge-nf-call-iptables ]] && echo 0 >/proc/sys/net/bridge/bridge-nf-call-iptables
    { echo "$hosts_tag"; for i in $(seq 1 "$nodes"); do echo "$net.$(( i + 1 )) l2n$i $hosts_tag"; done; } >>/etc/hosts
    slurmctld -i
    for i in $(seq 1 "$nodes"); do start_node "$i"; done
  else
    slurmctld -i
    slurmd
  fi
  for _ in $(seq 120); do
    (( $(sinfo -h -N -o %T 2>/dev/null | grep -cE "^(idle|mixed|allocated)") == nodes )) && break
    sleep 0.5
  done
  (( $(sinfo -h -N -o %T | grep -cE "^(idle|mixed|allocated)") == nodes )) ||
    { echo "local-slurm: not every node came up; see $state/*.log" >&2; tail -5 "$state"/slurm*.log >&2; exit 1; }
  echo "export SLURM_CONF=$conf"
}

stop() {
  local nodes=1 i
  [[ -f "$state/nodes" ]] && nodes=$(cat "$state/nodes")
  for pidfile in "$state"/slurmd*.pid "$state/slurmctld.pid" "$state/munge/munged.pid"; do
    [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  if (( nodes > 1 )); then
    for i in $(seq 1 "$nodes"); do  # whatever still runs in a node (a job's ranks) goes with it
      ip netns pids "l2n$i" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      ip netns del "l2n$i" 2>/dev/null || true
      ip link del "l2v$i" 2>/dev/null || true
    done
    ip link del "$bridge" 2>/dev/null || true
    sed -i "\\|$hosts_tag\$|d" /etc/hosts
  fi
  sleep 1
  rm -rf "$state"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  revive) revive "${2:-}" ;;
  *) echo "usage: $0 start [--nodes N] | stop | revive I" >&2; exit 2 ;;
esac
