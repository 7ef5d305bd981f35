#!/usr/bin/env bash
# Bring up a real single-node Slurm cluster (with accounting) on this machine.
#
# Needs root and Debian's packages; no systemd: every daemon is started by
# hand. The fact behind each step is in the comment at that step; seen working
# with Debian 12's slurm 22.05.8, munge 0.5.15 and mariadb 10.11, snakemake 9 and
# snakemake-executor-plugin-slurm 2.8.0 (cgroups are not available in a container,
# so CPU and memory requests only affect scheduling). Idempotent: a daemon that is already running is left
# alone. What this script starts is recorded in $STATE/started so that
# .ci/slurm_down.sh stops exactly that and nothing else.
set -euo pipefail

STATE=${TEXTSELD_SLURM_STATE:-/run/textseld-slurm}
DB_PASS=${TEXTSELD_SLURM_DB_PASS:-textseld-ci}
START=$(date +%s)
log() { echo "[slurm_up $(( $(date +%s) - START ))s] $*"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "slurm_up.sh: must run as root (it installs packages and starts daemons)" >&2
    exit 1
fi

# -- packages -----------------------------------------------------------------
PKGS=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$STATE"
touch "$STATE/started"
# record NAME PIDFILE once, so slurm_down.sh can stop it
record() { grep -q "^$1 " "$STATE/started" || echo "$1 $2" >>"$STATE/started"; }
running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2; shift 2
    for ((i = 0; i < limit * 4; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    echo "slurm_up.sh: timed out after ${limit}s waiting for $what" >&2
    return 1
}

HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)

install -d -o munge -g munge -m 0755 /run/munge
install -d -o slurm -g slurm -m 0755 /run/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
install -d -o mysql -g mysql -m 0755 /run/mysqld

# -- munge (the package created /etc/munge/munge.key) -------------------------
if ! running /run/munge/munged.pid; then
    [[ -s /etc/munge/munge.key ]] || runuser -u munge -- /usr/sbin/mungekey --create
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    record munged /run/munge/munged.pid
    log "munged started"
fi
wait_for 10 munge bash -c 'munge -n | unmunge'

# -- mariadb + slurmdbd: accounting, so sacct works as on a real cluster ------
# (without it sacct fails and the executor plugin waits forever, silently)
if ! running /run/mysqld/mysqld.pid; then
    [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql >/dev/null
    nohup mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
        >/var/log/slurm/mariadb.log 2>&1 &
    record mariadbd /run/mysqld/mysqld.pid
    log "mariadbd started"
fi
wait_for 60 mariadb mariadb -e 'SELECT 1'
mariadb <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
EOF
chown slurm:slurm /etc/slurm/slurmdbd.conf
chmod 600 /etc/slurm/slurmdbd.conf

cat >"$STATE/slurm.conf" <<EOF
# Single-node CI cluster written by textseld .ci/slurm_up.sh
ClusterName=textseld-ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
# job records must outlive the plugin's status-check interval
MinJobAge=600
# without a default a job that asks for no memory reserves the whole node
DefMemPerCPU=1000
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
# keep the job comment (the executor plugin writes the rule name there) in sacct
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
conf_changed=0
if ! cmp -s "$STATE/slurm.conf" /etc/slurm/slurm.conf; then
    cp "$STATE/slurm.conf" /etc/slurm/slurm.conf
    conf_changed=1
fi

if ! running /run/slurm/slurmdbd.pid; then
    /usr/sbin/slurmdbd
    record slurmdbd /run/slurm/slurmdbd.pid
    log "slurmdbd started"
fi
wait_for 30 slurmdbd sacctmgr -n show cluster

if running /run/slurm/slurmctld.pid && ((conf_changed)); then
    scontrol reconfigure
    log "slurm.conf changed: slurmctld reconfigured"
fi
if ! running /run/slurm/slurmctld.pid; then
    /usr/sbin/slurmctld
    record slurmctld /run/slurm/slurmctld.pid
    log "slurmctld started"
fi
wait_for 30 slurmctld scontrol ping
# the cluster registers itself in the database on slurmctld start-up
wait_for 30 "cluster registration" bash -c 'sacctmgr -n -P show cluster format=cluster | grep -qx textseld-ci'

if ! running /run/slurm/slurmd.pid; then
    /usr/sbin/slurmd
    record slurmd /run/slurm/slurmd.pid
    log "slurmd started"
fi
# a node left DOWN/DRAIN by an earlier run comes back with this
scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
wait_for 60 "node idle" bash -c '[[ $(sinfo -h -o %T | head -1) == idle ]]'
wait_for 30 "sacct" sacct -n -X --starttime=now-1minute

log "cluster up: $(sinfo -h -o '%P %D %T %c CPUs %m MB') (state in $STATE)"
