#!/usr/bin/env bash
# slurm-local.sh - a single-node SLURM cluster on localhost, without systemd.
#
#   slurm-local.sh install   apt-get install slurm + munge (+ mariadb/slurmdbd if accounting=dbd)
#   slurm-local.sh start     write config, start munged/(mariadb+slurmdbd)/slurmctld/slurmd,
#                            wait until the node is idle, print the env var(s) to export
#   slurm-local.sh stop      cancel jobs, stop every daemon this script started
#   slurm-local.sh status    show daemons, sinfo, squeue
#   slurm-local.sh env       print the export line(s) only
#
# Settings (environment):
#   SLURM_LOCAL_DIR         private folder for config/state/logs  (default /tmp/slurm-local)
#   SLURM_LOCAL_ACCOUNTING  none | dbd                            (default none)
#        none: no slurmdbd; `sacct` does NOT work (submitit falls back to its result files);
#              finished jobs stay visible in `squeue -t all` for MinJobAge seconds.
#        dbd:  MariaDB + slurmdbd on localhost; `sacct` works. Costs ~+14s install, ~+2.5s start.
#   SLURM_LOCAL_MINJOBAGE   seconds a finished job stays in squeue/scontrol (default 3600)
#   SLURM_LOCAL_PORT        first of 3 TCP ports: slurmctld, slurmd, slurmdbd (default 6817)
#
# Must run as root (daemons are started as root / the munge user; SlurmUser=root).
# Tested on Debian 12 (slurm-wlm 22.05.8, munge 0.5.15, mariadb 10.11) in a container, no systemd.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/slurm-local}
ACCT=${SLURM_LOCAL_ACCOUNTING:-none}
MINJOBAGE=${SLURM_LOCAL_MINJOBAGE:-3600}
PORT=${SLURM_LOCAL_PORT:-6817}
CONF=$DIR/etc/slurm.conf
DBDCONF=$DIR/etc/slurmdbd.conf
LOG=$DIR/log
RUN=$DIR/run
CLUSTER=localcluster
PARTITION=debug
MUNGE_SOCK=/run/munge/munge.socket.2
export SLURM_CONF=$CONF

say()  { echo "slurm-local: $*" >&2; }
die()  { echo "slurm-local: ERROR: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (use sudo)"; }

# show a daemon's log tail and fail
fail_daemon() { # name logfile
    echo "slurm-local: ERROR: $1 did not come up. Last lines of $2:" >&2
    if [ -s "$2" ]; then grep -v -e 'pmix' -e 'MPI: Cannot create context' "$2" | tail -n 15 | sed 's/^/    /' >&2
    else echo "    (no log file)" >&2; fi
    exit 1
}

# wait_daemon NAME PIDFILE LOGFILE SECONDS CHECK...: wait for CHECK; fail fast if the daemon died
wait_daemon() {
    local name=$1 pidf=$2 logf=$3 t=$4; shift 4
    local end=$((SECONDS + t))
    while ! "$@" >/dev/null 2>&1; do
        if [ -s "$pidf" ] && ! pid_alive "$pidf"; then fail_daemon "$name" "$logf"; fi
        [ $SECONDS -ge $end ] && fail_daemon "$name" "$logf"
        sleep 0.3
    done
}

# wait_for SECONDS CMD...  -> 0 when CMD succeeds within SECONDS
wait_for() {
    local t=$1; shift
    local end=$((SECONDS + t))
    while ! "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.5
    done
}

# /proc check instead of kill -0 so that status also works for non-root users
pid_alive() { local p; p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && [ -d "/proc/$p" ]; }

node_name() { hostname -s; }

# ---------------------------------------------------------------- install
pkgs_for_mode() {
    local p="slurmctld slurmd slurm-client munge"
    [ "$ACCT" = dbd ] && p="$p slurmdbd mariadb-server"
    echo "$p"
}

cmd_install() {
    need_root
    local missing=()
    for p in $(pkgs_for_mode); do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then say "packages already installed"; return 0; fi
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d keeps postinst scripts from trying to start services (no systemd here)
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
    fi
    local out; out=$(mktemp)
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$out" 2>&1; then
        apt-get update -q >>"$out" 2>&1 || true
        if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$out" 2>&1; then
            tail -n 30 "$out" >&2; [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
            die "apt-get install failed"
        fi
    fi
    rm -f "$out"
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    say "installed"
}

# ---------------------------------------------------------------- config
write_conf() {
    local node; node=$(node_name)
    mkdir -p "$DIR/etc" "$LOG" "$RUN" "$DIR/state" "$DIR/spool/slurmd-$node"
    # real hardware as slurmd sees it: "NodeName=x CPUs=.. Boards=.. ... RealMemory=.."
    local hw; hw=$(slurmd -C 2>/dev/null | head -n1 | sed -e 's/^NodeName=[^ ]* //')
    [ -n "$hw" ] || hw="CPUs=$(nproc) RealMemory=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 ))"
    local acct_lines
    if [ "$ACCT" = dbd ]; then
        acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT + 2))
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
    else
        acct_lines="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
    fi
    cat > "$CONF.tmp" <<EOF
# generated by slurm-local.sh - single node, no systemd, no cgroups
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
AuthInfo=cred_expire=10
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd-%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# container friendly: no cgroups anywhere
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# share the node between jobs by cores
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# scheduling passes every few seconds (defaults 60/30 s) so requeued/begin-time jobs start promptly
SchedulerParameters=sched_interval=5,bf_interval=5
ReturnToService=2
JobRequeue=1
# reject at submit time jobs that can never run here (e.g. -c 4 on a 2-cpu node) instead of PENDING forever
EnforcePartLimits=ALL
MailProg=/bin/true
KillWait=5
InactiveLimit=0
MinJobAge=$MINJOBAGE
# finished-job records also go to a text file (does not feed sacct)
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.txt
$acct_lines
NodeName=$node NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    mv "$CONF.tmp" "$CONF"
    # no cgroup.conf: with proctrack/linuxproc + task/none + jobacct_gather linux/none nothing reads it
    rm -f "$DIR/etc/cgroup.conf"
}

# ---------------------------------------------------------------- munge
munge_ok() { munge -n -S "$MUNGE_SOCK" 2>/dev/null | unmunge -S "$MUNGE_SOCK" >/dev/null 2>&1; }

start_munge() {
    if munge_ok; then return 0; fi
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating munge key"
        if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force
        else dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
    chmod 0700 /etc/munge /var/log/munge /var/lib/munge; chmod 0755 /run/munge; chmod 0600 /etc/munge/munge.key
    rm -f /run/munge/munged.pid "$MUNGE_SOCK" "$MUNGE_SOCK.lock"
    runuser -u munge -- /usr/sbin/munged --num-threads=2 </dev/null >/dev/null 2>&1 || fail_daemon munged /var/log/munge/munged.log
    wait_for 10 munge_ok || fail_daemon munged /var/log/munge/munged.log
    touch "$RUN/munged.started-by-us"
}

# ---------------------------------------------------------------- mariadb + slurmdbd
mysql_ok() { mariadb-admin --protocol=socket -uroot ping 2>/dev/null | grep -q alive; }

start_dbd() {
    if ! mysql_ok; then
        mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
        if [ ! -d /var/lib/mysql/mysql ]; then
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$LOG/mariadb-install.log" 2>&1 \
                || fail_daemon mariadb-install-db "$LOG/mariadb-install.log"
        fi
        touch "$LOG/mariadb.log"; chown mysql:mysql "$LOG/mariadb.log"
        # small footprint: no performance schema; values slurmdbd does not warn about
        nohup /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
            --pid-file=/run/mysqld/mysqld.pid --bind-address=127.0.0.1 --skip-name-resolve \
            --performance-schema=OFF --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 --log-error="$LOG/mariadb.log" \
            >/dev/null 2>&1 &
        wait_for 30 mysql_ok || fail_daemon mariadb "$LOG/mariadb.log"
        touch "$RUN/mariadb.started-by-us"
    fi
    # a fresh slurmctld state (job ids restart at 1) gets a fresh accounting database,
    # otherwise sacct would mix old and new jobs with the same ids
    if ! pid_alive "$RUN/slurmdbd.pid" && [ ! -e "$DIR/state/job_state" ]; then
        mariadb -uroot -e 'DROP DATABASE IF EXISTS slurm_acct_db'
    fi
    mariadb -uroot <<'EOF'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmlocal';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
    if pid_alive "$RUN/slurmdbd.pid"; then return 0; fi
    rm -f "$RUN/slurmdbd.pid"
    cat > "$DBDCONF" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT + 2))
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmlocal
EOF
    chmod 600 "$DBDCONF"
    slurmdbd >>"$LOG/slurmdbd.log" 2>&1 || fail_daemon slurmdbd "$LOG/slurmdbd.log"
    # slurmdbd is ready when sacctmgr can talk to it
    wait_daemon slurmdbd "$RUN/slurmdbd.pid" "$LOG/slurmdbd.log" 30 sacctmgr -i -n list cluster
    sacctmgr -i -n list cluster format=cluster -P | grep -qx "$CLUSTER" \
        || sacctmgr -i add cluster "$CLUSTER" >/dev/null
}

# ---------------------------------------------------------------- slurm
ctld_ok() { scontrol ping 2>/dev/null | grep -q "is UP"; }
node_state() { sinfo -h -N -n "$(node_name)" -o '%T' 2>/dev/null | head -n1; }
node_idle() { case "$(node_state)" in idle|mixed|allocated|completing) return 0;; *) return 1;; esac; }

print_env() {
    echo "export SLURM_CONF=$CONF"
}

cmd_start() {
    need_root
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        || die "slurm/munge not installed: run '$0 install' first"
    [ "$ACCT" = dbd ] && ! command -v slurmdbd >/dev/null && die "slurmdbd not installed: SLURM_LOCAL_ACCOUNTING=dbd $0 install"
    mkdir -p "$LOG" "$RUN"
    if pid_alive "$RUN/slurmctld.pid" && ctld_ok && node_idle; then
        say "already running (node $(node_name): $(node_state))"; print_env; return 0
    fi
    local node; node=$(node_name)
    write_conf
    start_munge
    [ "$ACCT" = dbd ] && start_dbd
    if ! pid_alive "$RUN/slurmctld.pid"; then
        rm -f "$RUN/slurmctld.pid"
        slurmctld >>"$LOG/slurmctld.log" 2>&1 || fail_daemon slurmctld "$LOG/slurmctld.log"
    fi
    wait_daemon slurmctld "$RUN/slurmctld.pid" "$LOG/slurmctld.log" 30 ctld_ok
    if ! pid_alive "$RUN/slurmd-$node.pid"; then
        rm -f "$RUN/slurmd-$node.pid"
        slurmd -N "$node" >>"$LOG/slurmd.log" 2>&1 || fail_daemon slurmd "$LOG/slurmd.log"
    fi
    wait_daemon slurmd "$RUN/slurmd-$node.pid" "$LOG/slurmd.log" 20 pid_alive "$RUN/slurmd-$node.pid"
    if ! wait_for 30 node_idle; then
        # a node left DOWN/DRAIN by an earlier run: resume it once
        scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
        wait_for 15 node_idle || { sinfo -N -l >&2 || true; fail_daemon slurmd "$LOG/slurmd.log"; }
    fi
    say "up: node $node $(node_state), accounting=$ACCT, config $CONF"
    print_env
}

cmd_stop() {
    need_root
    if [ -s "$CONF" ] && ctld_ok; then
        local jobs; jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
        if [ -n "${jobs// /}" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            wait_for 15 sh -c '[ -z "$(squeue -h -t R,CG,PD 2>/dev/null)" ]' || true
        fi
        scontrol shutdown >/dev/null 2>&1 || true   # stops slurmctld and slurmd
    fi
    local f
    for f in "$RUN"/slurmd-*.pid "$RUN/slurmctld.pid" "$RUN/slurmdbd.pid"; do
        [ -e "$f" ] || continue
        if pid_alive "$f"; then
            local p; p=$(cat "$f")
            kill -TERM "$p" 2>/dev/null || true
            wait_for 15 sh -c "! kill -0 $p" || kill -KILL "$p" 2>/dev/null || true
        fi
        rm -f "$f"
    done
    if [ -e "$RUN/mariadb.started-by-us" ]; then
        mariadb-admin -uroot shutdown >/dev/null 2>&1 || true
        rm -f "$RUN/mariadb.started-by-us"
    fi
    if [ -e "$RUN/munged.started-by-us" ]; then
        local mp; mp=$(cat /run/munge/munged.pid 2>/dev/null || true)
        [ -n "$mp" ] && kill -TERM "$mp" 2>/dev/null || true
        [ -n "$mp" ] && { wait_for 10 sh -c "! kill -0 $mp" || true; }
        rm -f "$RUN/munged.started-by-us"
    fi
    say "stopped"
}

cmd_status() {
    local rc=0 node; node=$(node_name)
    up_pid() { if pid_alive "$1"; then echo "up (pid $(cat "$1"))"; else echo down; fi; }
    printf '%-10s %s\n' munged "$(munge_ok && echo up || echo down)"
    if [ "$ACCT" = dbd ] || [ -e "$RUN/slurmdbd.pid" ]; then
        # mysqld.pid is not world-readable: fall back to a process lookup for non-root callers
        printf '%-10s %s\n' mariadb "$(if [ -r /run/mysqld/mysqld.pid ]; then up_pid /run/mysqld/mysqld.pid
            elif pgrep -x mariadbd >/dev/null; then echo up; else echo down; fi)"
        printf '%-10s %s\n' slurmdbd "$(up_pid "$RUN/slurmdbd.pid")"
    fi
    printf '%-10s %s\n' slurmctld "$(up_pid "$RUN/slurmctld.pid")"
    printf '%-10s %s\n' slurmd "$(up_pid "$RUN/slurmd-$node.pid")"
    pid_alive "$RUN/slurmctld.pid" && pid_alive "$RUN/slurmd-$node.pid" || rc=1
    if [ -s "$CONF" ] && ctld_ok; then
        sinfo -N -o '%N %T %C %m' || true
        squeue -o '%.10i %.9P %.12j %.8T %.10M %R' || true
    fi
    print_env
    return $rc
}

case "${1:-}" in
    install) cmd_install ;;
    start)   cmd_start ;;
    stop)    cmd_stop ;;
    status)  cmd_status ;;
    env)     print_env ;;
    restart) cmd_stop; cmd_start ;;
    *) echo "usage: $0 {install|start|stop|status|env|restart}" >&2; exit 2 ;;
esac
