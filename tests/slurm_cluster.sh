#!/usr/bin/env bash
# A real single-node SLURM for the tests (Debian 12: slurm-wlm 22.05, munge 0.5).
#   tests/slurm_cluster.sh start   install if missing, configure, start munged/slurmctld/slurmd
#   tests/slurm_cluster.sh stop    stop the daemons (other test runs on this machine may use them)
#   tests/slurm_cluster.sh status
# Idempotent: `start` on a running cluster with this script's config prints "running" and changes
# nothing; on a cluster running another config (an older version of this script, someone else's)
# it writes this config, restarts the daemons and prints "restarted" (jobs survive a restart).
set -euo pipefail
cmd=${1:-status}
host=$(hostname -s)
conf=/etc/slurm/slurm.conf
desired=$(mktemp)
trap 'rm -f "$desired"' EXIT

# A node finishing a job is `completing`: up. (`%T` may end in `*`: not responding yet.)
is_up() { sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)$'; }

# The settings the tests rely on, as `scontrol show config` reports them from the running controller.
CHECKED_KEYS="ClusterName JobRequeue MinJobAge SelectTypeParameters AccountingStorageType"

running_matches() {
    # The running controller has the settings of the config file written by write_conf, and the
    # node its CPUs: otherwise it was started from another config.
    local key want have
    for key in $CHECKED_KEYS; do
        want=$(awk -F= -v k="$key" '$1 == k {print tolower($2)}' "$desired")
        have=$(scontrol show config 2>/dev/null | awk -v k="$key" '$1 == k {print tolower($3)}')
        [ -n "$want" ] && [ "$want" = "$have" ] || return 1
    done
    scontrol show node "$host" 2>/dev/null | grep -q 'CPUTot=32 '
}

write_conf() {
    # CPUs and memory: a typical compute node, more than this machine has (config_overrides), so
    # that the resilience tests' scenarios and group jobs whose summed threads exceed 2 cores
    # are scheduled side by side, as on a real node. The test jobs use a fraction of what they ask.
    cat <<CONF
ClusterName=hpcpipe-test
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobRequeue=1
MinJobAge=600
MpiDefault=none
SlurmctldLogFile=/var/log/slurmctld.log
SlurmdLogFile=/var/log/slurmd.log
SlurmdParameters=config_overrides
NodeName=$host CPUs=32 RealMemory=96000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

case "$cmd" in
start)
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    fi
    write_conf >"$desired"
    if is_up; then
        if running_matches; then
            echo "running"
            exit 0
        fi
        echo "the running SLURM has another config: restarting it with $conf" >&2
        scontrol shutdown >/dev/null 2>&1 || true
        for _ in $(seq 1 40); do
            pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break
            sleep 0.5
        done
        state="restarted"
    else
        state="started"
    fi
    mkdir -p /etc/slurm /var/spool/slurmd /var/spool/slurmctld /run/munge
    cp "$desired" "$conf"
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        [ -f /etc/munge/munge.key ] || mungekey --create >/dev/null 2>&1 || true
        munged --force 2>/dev/null || true
    fi
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 1 60); do
        if is_up && running_matches; then
            echo "$state"
            exit 0
        fi
        scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "SLURM did not come up; see /var/log/slurmctld.log and /var/log/slurmd.log" >&2
    sinfo >&2 || true
    exit 1
    ;;
stop)
    scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do
        pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break
        sleep 0.5
    done
    echo "stopped"
    ;;
status)
    if is_up; then sinfo; else echo "down"; exit 1; fi
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
