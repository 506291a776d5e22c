#!/usr/bin/env bash
# A real single-node SLURM for the tests (Debian 12: slurm-wlm 22.05, munge 0.5), with accounting
# (slurmdbd on its own MariaDB server: `sacct` knows every job, as on most production clusters).
#   tests/slurm_cluster.sh start   install if missing, configure, start munged, MariaDB, slurmdbd,
#                                  slurmctld and slurmd (each only if it is not running)
#   tests/slurm_cluster.sh stop    stop slurmctld/slurmd, and the MariaDB server and slurmdbd if
#                                  this script started them (other test runs may use them)
#   tests/slurm_cluster.sh status
# Idempotent: `start` on a running cluster with this script's config prints "running" and changes
# nothing; on a cluster running another config (an older version of this script, someone else's)
# it writes this config and reconfigures the controller ("reconfigured"), or where a setting needs
# it, restarts the daemons ("restarted"; running jobs survive a restart).
set -euo pipefail
cmd=${1:-status}
host=$(hostname -s)
conf=/etc/slurm/slurm.conf
dbdconf=/etc/slurm/slurmdbd.conf
# The accounting database: a MariaDB server of its own (data dir, socket, port on 127.0.0.1),
# never the machine's default one. Files in $acct_dir mark the daemons this script started.
acct_dir=/var/lib/hpcpipe-test
db_dir=$acct_dir/mariadb
db_sock=$acct_dir/mariadb.sock
db_port=3319
db_pass=hpcpipe-test-accounting  # a loopback-only test database
desired=$(mktemp)
trap 'rm -f "$desired"' EXIT

# A node finishing a job is `completing`: up. (`%T` may end in `*`: not responding yet.)
is_up() { sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)$'; }

# The settings the tests rely on, as `scontrol show config` reports them from the running controller.
CHECKED_KEYS="ClusterName JobRequeue MinJobAge SelectTypeParameters AccountingStorageType AccountingStoreFlags JobAcctGatherType JobAcctGatherFrequency"

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

db_up() { mariadb-admin --socket="$db_sock" -uroot ping >/dev/null 2>&1; }
dbd_up() { sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }

start_db() {
    db_up && return 0
    mkdir -p "$acct_dir"
    if [ ! -d "$db_dir/mysql" ]; then
        mariadb-install-db --user=root --datadir="$db_dir" --auth-root-authentication-method=socket \
            --skip-test-db >"$acct_dir/mariadb-install.log" 2>&1
    fi
    setsid mariadbd --user=root --datadir="$db_dir" --socket="$db_sock" --port="$db_port" \
        --bind-address=127.0.0.1 --pid-file="$acct_dir/mariadb.pid" \
        --log-error=/var/log/hpcpipe-test-mariadb.log </dev/null >/dev/null 2>&1 &
    for _ in $(seq 1 60); do
        db_up && break
        sleep 0.5
    done
    db_up || { echo "MariaDB did not start; see /var/log/hpcpipe-test-mariadb.log" >&2; return 1; }
    touch "$acct_dir/mariadb.started"
    mariadb --socket="$db_sock" -uroot <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
GRANT ALL ON hpcpipe_test_acct.* TO 'slurm'@'127.0.0.1';
SQL
}

start_dbd() {
    if ! pgrep -x slurmdbd >/dev/null; then
        cat >"$dbdconf" <<DBD
AuthType=auth/munge
DbdHost=$host
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=hpcpipe_test_acct
DBD
        chmod 600 "$dbdconf"
        slurmdbd
        touch "$acct_dir/slurmdbd.started"
    fi
    for _ in $(seq 1 60); do
        dbd_up && break
        sleep 0.5
    done
    dbd_up || { echo "slurmdbd did not answer; see /var/log/slurmdbd.log" >&2; return 1; }
    # The controller records its jobs only for a cluster the database knows.
    sacctmgr -n -P show cluster format=cluster | grep -qx hpcpipe-test ||
        sacctmgr -i add cluster hpcpipe-test >/dev/null
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
JobAcctGatherType=jobacct_gather/linux
# Sample every second: a job step of a few seconds (a small af3 chunk) still gets its MaxRSS
# into the accounting, and so into the efficiency report (at 5 s it often got none).
JobAcctGatherFrequency=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$host
AccountingStoreFlags=job_comment
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
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null ||
        ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends \
            slurm-wlm munge slurmdbd mariadb-server >/dev/null
    fi
    write_conf >"$desired"
    if is_up && running_matches && dbd_up; then
        echo "running"
        exit 0
    fi
    if is_up && running_matches; then
        state="running"  # only the accounting daemons are missing
    elif is_up; then
        # Most settings take effect on `scontrol reconfigure` (no restart: running jobs and the
        # other test runs on this machine see nothing); the others need the daemons restarted.
        cp "$desired" "$conf"
        scontrol reconfigure >/dev/null 2>&1 || true
        for _ in $(seq 1 20); do
            running_matches && break
            sleep 0.5
        done
        if running_matches && dbd_up; then
            echo "reconfigured"
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
    start_db
    start_dbd
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 1 60); do
        # (slurmdbd may be busy for a moment with the controller's registration)
        if is_up && running_matches && dbd_up; then
            echo "$state"
            exit 0
        fi
        scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "SLURM did not come up; see /var/log/slurmctld.log, slurmd.log and slurmdbd.log" >&2
    sinfo >&2 || true
    exit 1
    ;;
stop)
    scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do
        pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break
        sleep 0.5
    done
    if [ -f "$acct_dir/slurmdbd.started" ]; then
        pkill -F /run/slurmdbd.pid 2>/dev/null || true
        rm -f "$acct_dir/slurmdbd.started"
    fi
    if [ -f "$acct_dir/mariadb.started" ]; then
        mariadb-admin --socket="$db_sock" -uroot shutdown >/dev/null 2>&1 || true
        rm -f "$acct_dir/mariadb.started"
    fi
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
