#!/usr/bin/env bash
# A real single-node SLURM for the tests (Debian 12: slurm-wlm 22.05, munge 0.5).
#   tests/slurm_cluster.sh start   install if missing, configure, start munged/slurmctld/slurmd
#   tests/slurm_cluster.sh stop    stop the daemons (only call it if `start` said "started")
#   tests/slurm_cluster.sh status
# Idempotent: `start` on a running cluster prints "running" and changes nothing.
set -euo pipefail
cmd=${1:-status}
host=$(hostname -s)
conf=/etc/slurm/slurm.conf

is_up() { sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; }

write_conf() {
    # CPUs and memory: a typical compute node, more than this machine has (config_overrides), so
    # that the resilience tests' scenarios and group jobs whose summed threads exceed 2 cores
    # are scheduled side by side, as on a real node. The test jobs use a fraction of what they ask.
    cat >"$conf" <<CONF
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
    if is_up; then
        echo "running"
        exit 0
    fi
    mkdir -p /etc/slurm /var/spool/slurmd /var/spool/slurmctld /run/munge
    write_conf
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        [ -f /etc/munge/munge.key ] || mungekey --create >/dev/null 2>&1 || true
        munged --force 2>/dev/null || true
    fi
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 1 60); do
        if is_up; then
            echo "started"
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
