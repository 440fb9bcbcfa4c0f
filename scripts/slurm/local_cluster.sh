#!/usr/bin/env bash
# A real one-node SLURM on this machine, for trying the sbatch templates (and for tests/test_slurm.py).
#
#   bash scripts/slurm/local_cluster.sh start DIR   # install slurm-wlm if missing (root), start munge, slurmctld, slurmd
#   export SLURM_CONF=DIR/slurm.conf                # then sbatch / squeue / sinfo talk to it
#   bash scripts/slurm/local_cluster.sh stop DIR    # stop the daemons it started
#
# Everything SLURM writes (state, spool, logs, pid files) lives under DIR. Needs root: slurmd runs jobs as their
# submitting user, and munged's key lives in /etc/munge. Prints "ready" once the node is idle; on a failure it
# prints the failing step and the tail of the relevant log, and exits non-zero.
set -euo pipefail

action="${1:?usage: local_cluster.sh start|stop DIR}"
dir="$(mkdir -p "${2:?usage: local_cluster.sh start|stop DIR}" && cd "$2" && pwd)"
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"

fail() {
    echo "local_cluster: $1" >&2
    [[ -n "${2:-}" && -f "$2" ]] && tail -n 20 "$2" >&2
    exit 1
}

install_slurm() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurm-wlm >"$dir/apt.log" 2>&1 \
        || { apt-get update -q >>"$dir/apt.log" 2>&1 && apt-get install -y -q slurm-wlm >>"$dir/apt.log" 2>&1; } \
        || fail "apt-get install -y slurm-wlm failed" "$dir/apt.log"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return  # a munged is already serving
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    # --force: start although the key or directories are not exactly as munged likes them in a container.
    runuser -u munge -- munged --force >"$dir/munged.log" 2>&1 || munged --force >>"$dir/munged.log" 2>&1 \
        || fail "munged --force failed" "$dir/munged.log"
    touch "$dir/munged.started"
    munge -n | unmunge >/dev/null 2>&1 || fail "munge credentials do not round-trip (munge -n | unmunge)"
}

write_conf() {
    local host node
    host="$(hostname -s)"
    # slurmd -C prints this machine's real CPUs, sockets, cores and memory: a node configured with more than
    # it has would be drained at once.
    node="$(slurmd -C | head -n 1)"
    [[ "$node" == NodeName=* ]] || fail "slurmd -C printed no node line: $node"
    mkdir -p "$dir/state" "$dir/spool" "$dir/log"
    cat >"$conf" <<EOF
ClusterName=ftlablocal
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job may start again cred_expire + 1 s after its requeue (120 s by default), and waits for the next
# scheduling pass after that (sched_interval, 60 s by default): kept short here so that requeue tests take seconds.
AuthInfo=cred_expire=10
SchedulerParameters=sched_interval=2
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
$node State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

wait_idle() {
    local deadline=$((SECONDS + ${SLURM_START_TIMEOUT:-30}))
    until sinfo -h -o %T 2>/dev/null | grep -qx idle; do
        ((SECONDS < deadline)) || fail "the node is not idle after ${SLURM_START_TIMEOUT:-30} s (sinfo: $(sinfo -h -o '%T %E' 2>&1 | head -n 1))" "$dir/log/slurmd.log"
        sleep 0.5
    done
}

stop_pidfile() {
    local pidfile="$1" pid
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"
}

case "$action" in
start)
    [[ $(id -u) == 0 ]] || fail "needs root: slurmd starts jobs as their submitting user, and munge's key lives in /etc/munge"
    install_slurm
    start_munge
    write_conf
    slurmctld -i -f "$conf" >"$dir/log/slurmctld.stdout" 2>&1 || fail "slurmctld failed to start" "$dir/log/slurmctld.log"
    slurmd -f "$conf" >"$dir/log/slurmd.stdout" 2>&1 || fail "slurmd failed to start" "$dir/log/slurmd.log"
    wait_idle
    echo "ready: export SLURM_CONF=$conf"
    ;;
stop)
    stop_pidfile "$dir/slurmd.pid"
    stop_pidfile "$dir/slurmctld.pid"
    if [[ -f "$dir/munged.started" ]]; then
        stop_pidfile /run/munge/munged.pid
        rm -f "$dir/munged.started"
    fi
    ;;
*)
    fail "unknown action $action (start or stop)"
    ;;
esac
