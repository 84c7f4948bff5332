#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the SLURM profile's test.
#
#   tests/cluster/slurm-cluster.sh up       install (if missing), configure, start, wait until idle
#   tests/cluster/slurm-cluster.sh status   exit 0 when the node accepts jobs
#   tests/cluster/slurm-cluster.sh down     stop the daemons this script started
#   tests/cluster/slurm-cluster.sh purge    down, then remove its config, state and logs
#
# Debian's slurm-wlm and munge packages, no systemd: munged, slurmctld and slurmd are
# started directly and talk over 127.0.0.1 only (the node is "localhost", and
# CommunicationParameters binds every daemon to that address, not to all interfaces).
# Needs root (apt, /etc/slurm, daemons). `up` is idempotent: a second call starts only
# what is not running, and restarts the daemons only if their config changed. It
# refuses to touch an /etc/slurm/*.conf it did not write, so it never clobbers a real
# cluster's config.
set -euo pipefail

MARK="# managed by spark-harness tests/cluster/slurm-cluster.sh"
CONF=/etc/slurm/slurm.conf
CGROUP_CONF=/etc/slurm/cgroup.conf
STATE=/var/lib/slurm/spark-harness
LOGS=/var/log/slurm
RUN=/run/spark-harness-slurm
PARTITION=${SPARK_SLURM_PARTITION:-harness}
WAIT_S=${SPARK_SLURM_WAIT_S:-60}

die() { echo "slurm-cluster: $*" >&2; exit 1; }
log() { echo "slurm-cluster: $*" >&2; }

need_root() { [[ $(id -u) == 0 ]] || die "must run as root (it installs packages and starts daemons)"; }

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && return 0
    command -v apt-get >/dev/null || die "slurm-wlm/munge missing and no apt-get to install them"
    log "installing slurm-wlm and munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

# Process id from a pid file, if that process is alive and is the named program.
running_pid() {
    local pidfile=$1 prog=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ -r /proc/$pid/comm ]] || return 1
    [[ $(</proc/"$pid"/comm) == "$prog"* ]] || return 1
    echo "$pid"
}

CONFIG_CHANGED=0

# Write a file this script owns from stdin; refuse one it did not write.
write_owned() {
    local dest=$1 tmp
    if [[ -e $dest ]] && ! grep -qF "$MARK" "$dest"; then
        die "$dest exists and was not written by this script; not touching it"
    fi
    tmp=$(mktemp "$dest.XXXXXX")
    cat >"$tmp"
    chmod 644 "$tmp"
    if cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
    else
        mv "$tmp" "$dest"
        CONFIG_CHANGED=1
    fi
}

# Slurm 22.05 confines jobs with cgroup v1 (v2 needs systemd delegation): use it where
# the controllers are mounted and writable, as on a real cluster; else track processes
# by parent id, which confines nothing but still ends every process of a job.
cgroup_v1_usable() {
    local c
    for c in cpuset memory freezer; do
        [[ -d /sys/fs/cgroup/$c && -w /sys/fs/cgroup/$c ]] || return 1
    done
}

write_config() {
    # CPUs, sockets and memory as slurmd itself detects them (memory less a margin for
    # the OS, so the node is never drained for having less than it claims)
    local hw cpus sockets cores threads mem
    hw=$(slurmd -C | head -1)
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    sockets=$(sed -n 's/.*SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$hw")
    cores=$(sed -n 's/.*CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$hw")
    threads=$(sed -n 's/.*ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$((mem * 9 / 10))
    mkdir -p "$STATE/ctld" "$STATE/d" "$LOGS" "$RUN"
    chown slurm:slurm "$STATE/ctld" "$LOGS"
    local proctrack=proctrack/linuxproc task=task/none
    if cgroup_v1_usable; then
        proctrack=proctrack/cgroup task=task/cgroup,task/affinity
        write_owned "$CGROUP_CONF" <<EOF
$MARK
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=yes
ConstrainRAMSpace=yes
EOF
    fi
    write_owned "$CONF" <<EOF
$MARK
# A single-node test cluster: do not use for production.
ClusterName=sparkharness
SlurmctldHost=localhost(127.0.0.1)
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# cgroup confinement where usable (see cgroup_v1_usable above)
ProctrackType=$proctrack
TaskPlugin=$task
# No slurmdbd: the executor plugin reads job states with squeue, which shows finished
# jobs for MinJobAge seconds, far longer than its status-check interval.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
# Cores and memory are consumable, so small analysis jobs share the node while a
# measurement group (--exclusive) gets it whole.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# A job asking for more than the node has is refused at sbatch, not left pending.
EnforcePartLimits=ALL
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munge() {
    if running_pid /run/munge/munged.pid munged >/dev/null; then return 0; fi
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    [[ -s /etc/munge/munge.key ]] || { mungekey --create --force 2>/dev/null || create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid --num-threads=10
    munge -n | unmunge >/dev/null || die "munge does not round-trip a credential"
    echo munged >"$RUN/started-munged"
}

start_slurm() {
    running_pid "$RUN/slurmctld.pid" slurmctld >/dev/null || slurmctld
    running_pid "$RUN/slurmd.pid" slurmd >/dev/null || slurmd -N localhost
}

node_state() { sinfo -h -N -n localhost -o %T 2>/dev/null | head -1; }

wait_idle() {
    local deadline=$((SECONDS + WAIT_S)) state=""
    while ((SECONDS < deadline)); do
        state=$(node_state || true)
        case $state in
            idle* | mixed* | allocated* | completing*) return 0 ;;
            down* | drain* | fail*)
                scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
        esac
        sleep 1
    done
    die "node not ready after ${WAIT_S}s (state: '${state}'); see $LOGS/slurmctld.log and $LOGS/slurmd.log"
}

stop_pid() {
    local pidfile=$1 prog=$2 pid _
    pid=$(running_pid "$pidfile" "$prog") || return 0
    kill -TERM "$pid"
    for _ in $(seq 50); do [[ -d /proc/$pid ]] || return 0; sleep 0.2; done
    log "$prog ($pid) ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

cmd_up() {
    need_root
    install_packages
    mkdir -p "$RUN"
    write_config
    if ((CONFIG_CHANGED)); then  # daemons running on an older config restart with it
        stop_pid "$RUN/slurmd.pid" slurmd
        stop_pid "$RUN/slurmctld.pid" slurmctld
    fi
    start_munge
    start_slurm
    wait_idle
    log "up: partition $PARTITION, $(sinfo -h -o '%D node(s) %c CPUs %m MB' -p "$PARTITION")"
}

cmd_down() {
    need_root
    # jobs first, so no step outlives its daemon
    if running_pid "$RUN/slurmctld.pid" slurmctld >/dev/null; then
        scancel --partition="$PARTITION" 2>/dev/null || true
    fi
    stop_pid "$RUN/slurmd.pid" slurmd
    stop_pid "$RUN/slurmctld.pid" slurmctld
    if [[ -e $RUN/started-munged ]]; then
        stop_pid /run/munge/munged.pid munged
        rm -f "$RUN/started-munged"
    fi
}

cmd_status() {
    case $(node_state || true) in
        idle* | mixed* | allocated* | completing*) echo up ;;
        *) echo down; return 1 ;;
    esac
}

cmd_purge() {
    cmd_down
    local f
    for f in "$CONF" "$CGROUP_CONF"; do
        if [[ -e $f ]] && grep -qF "$MARK" "$f"; then rm -f "$f"; fi
    done
    rm -rf "$STATE" "$RUN" "$LOGS/slurmctld.log" "$LOGS/slurmd.log"
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    purge) cmd_purge ;;
    *) die "usage: $0 up|down|status|purge" ;;
esac
