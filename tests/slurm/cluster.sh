#!/usr/bin/env bash
# A throw-away single-node Slurm 22.05 cluster (Debian 12) for the tests:
# munged + MariaDB + slurmdbd + slurmctld + slurmd, with one fake GPU.
#
#   bash tests/slurm/cluster.sh start  STATE_DIR
#   bash tests/slurm/cluster.sh status STATE_DIR
#   bash tests/slurm/cluster.sh stop   STATE_DIR
#
# Everything the cluster writes lives under STATE_DIR, except
#   /etc/slurm/slurm.conf and /etc/slurm/gres.conf (the executor plugin's job
#   step drops SLURM_CONF, so clients must find the config there). Files that
#   were there before are backed up into STATE_DIR and restored by `stop`.
#   /run/munge (created if missing) and munged's log in /var/log/munge.
#
# Exit codes of `start`: 0 running, 77 not root (so the packages cannot be
# installed and the daemons cannot run), 78 package installation failed
# (apt-get missing or failing), 1 any other failure (the logs are printed).
# `status`: 0 all daemons up, 3 otherwise.
set -euo pipefail

MARKER="# written by medrepro tests/slurm/cluster.sh"
CLUSTER_NAME="${MEDREPRO_SLURM_CLUSTER:-medrepro}"
PARTITION="${MEDREPRO_SLURM_PARTITION:-debug}"
ACCOUNT="medrepro"
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
DAEMONS=(munged mariadb slurmdbd slurmctld slurmd)   # start order
SLURMCTLD_PORT=6817
SLURMD_PORT=6818
DBD_PORT=6819
ETC_SLURM=/etc/slurm
MANAGED_ETC_FILES=(slurm.conf gres.conf)

log() { printf '[slurm-cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $1"; exit "${2:-1}"; }

usage() {
    echo "usage: $0 {start|stop|status} STATE_DIR" >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
ACTION=$1
STATE_DIR=$2
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)

PID_DIR=$STATE_DIR/pids
LOG_DIR=$STATE_DIR/log
CONF_DIR=$STATE_DIR/etc
BACKUP_DIR=$STATE_DIR/etc-backup
DB_DIR=$STATE_DIR/mysql
NODE=$(hostname -s 2>/dev/null || uname -n)
NODE=${NODE%%.*} # slurmd takes its NodeName from the short host name

# ---------------------------------------------------------------- helpers ---

pid_of() { # name -> pid recorded in STATE_DIR (empty if none)
    local f=$PID_DIR/$1.pid
    if [[ -s $f ]]; then cat "$f"; fi
}

# pid file the daemon writes itself (under STATE_DIR; not used for munged)
own_pidfile() {
    case $1 in
        mariadb) echo "$DB_DIR/mariadbd.pid" ;;
        *) echo "$STATE_DIR/run/$1.pid" ;;
    esac
}

runs_program() { # pid name
    local exe
    kill -0 "$1" 2>/dev/null || return 1
    exe=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true)
    case $2 in
        mariadb) [[ $exe == *mariadbd* || $exe == *mysqld* ]] ;;
        *) [[ $exe == *"$2"* ]] ;;
    esac
}

# true if daemon $1, started by this script, is alive. Falls back on the
# daemon's own pid file (then re-records the pid), e.g. if a pid file in
# STATE_DIR/pids was lost; munged only counts if its recorded pid is alive.
alive() {
    local name=$1 pid own
    pid=$(pid_of "$name")
    if [[ -n $pid ]] && runs_program "$pid" "$name"; then
        return 0
    fi
    [[ $name == munged ]] && return 1
    own=$(own_pidfile "$name")
    pid=$(cat "$own" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && runs_program "$pid" "$name"; then
        mkdir -p "$PID_DIR" && echo "$pid" >"$PID_DIR/$name.pid"
        return 0
    fi
    return 1
}

# start "$@" detached (own session, no tty, output to a log) and record its pid
spawn() {
    local name=$1
    shift
    # Without job control, the background child is not a process-group leader,
    # so setsid(1) calls setsid() and execs in place: $! is the daemon's pid.
    setsid "$@" </dev/null >>"$LOG_DIR/$name.out" 2>&1 &
    echo $! >"$PID_DIR/$name.pid"
}

wait_for() { # timeout_s description command...
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${timeout}s waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}

dump_logs() {
    log "---- logs from $LOG_DIR ----"
    local f
    for f in "$LOG_DIR"/*; do
        [[ -f $f ]] || continue
        echo "==== $f (last 40 lines) ====" >&2
        tail -n 40 "$f" >&2 || true
    done
    if [[ -f /var/log/munge/munged.log ]]; then
        echo "==== /var/log/munge/munged.log (last 10 lines) ====" >&2
        tail -n 10 /var/log/munge/munged.log >&2 || true
    fi
}

fail() { log "ERROR: $*"; dump_logs; exit 1; }

have_binaries() {
    local b
    for b in munged munge slurmctld slurmd slurmdbd sbatch sacct sacctmgr sinfo scontrol; do
        command -v "$b" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$b" >/dev/null 2>&1 || return 1
    done
    command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 ||
        [[ -x /usr/sbin/mariadbd || -x /usr/sbin/mysqld ]] || return 1
    command -v mariadb-install-db >/dev/null 2>&1 || command -v mysql_install_db >/dev/null 2>&1 || return 1
    [[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/accounting_storage_mysql.so ]] ||
        compgen -G "/usr/lib/*/slurm-wlm/accounting_storage_mysql.so" >/dev/null || return 1
}

ensure_packages() {
    export PATH=$PATH:/usr/sbin:/sbin
    have_binaries && return 0
    if [[ $(id -u) -ne 0 ]]; then
        die "Slurm/munge/MariaDB packages are missing and we are not root, so they cannot be installed (needs: apt-get install ${PACKAGES[*]})" 77
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "Slurm packages are missing and apt-get is not available to install them" 78
    log "installing ${PACKAGES[*]} (apt-get, --no-install-recommends) ..."
    local t0=$SECONDS apt_log=$STATE_DIR/apt.log
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >"$apt_log" 2>&1; then
        if ! apt-get update -qq >>"$apt_log" 2>&1 ||
            ! apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >>"$apt_log" 2>&1; then
            tail -n 30 "$apt_log" >&2
            die "apt-get install ${PACKAGES[*]} failed (full log: $apt_log)" 78
        fi
    fi
    have_binaries || { tail -n 30 "$apt_log" >&2; die "packages installed but binaries still missing" 78; }
    log "packages installed in $((SECONDS - t0)) s"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# shellcheck disable=SC2120  # called with arguments through wait_for
mysql_cli() {
    local client
    client=$(command -v mariadb || command -v mysql)
    "$client" --no-defaults --protocol=socket -S "$DB_DIR/mysqld.sock" -u root "$@"
}

# ------------------------------------------------------------------ munge ---

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        if alive munged; then
            log "munged already running (pid $(pid_of munged))"
        else
            log "using the munged that is already running (not managed by this script)"
            rm -f "$PID_DIR/munged.pid"
        fi
        return 0
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 0700 /etc/munge
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    # a stale socket from a dead munged would make the new one refuse to start
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    spawn munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
    wait_for 20 "munged" bash -c 'munge -n | unmunge' || fail "munged did not come up"
    log "munged up (pid $(pid_of munged))"
}

# ---------------------------------------------------------------- MariaDB ---

start_mariadb() {
    local port
    if alive mariadb; then
        log "MariaDB already running (pid $(pid_of mariadb))"
        return 0
    fi
    local server install_db
    server=$(command -v mariadbd || command -v mysqld || echo /usr/sbin/mariadbd)
    install_db=$(command -v mariadb-install-db || command -v mysql_install_db)
    mkdir -p "$DB_DIR"
    if [[ ! -d $DB_DIR/data/mysql ]]; then
        log "initialising MariaDB datadir"
        "$install_db" --no-defaults --user=root --datadir="$DB_DIR/data" \
            --auth-root-authentication-method=socket --skip-test-db \
            --innodb-log-file-size=16M \
            >"$LOG_DIR/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed"
    fi
    # TCP on 127.0.0.1 only (slurmdbd connects by host+port); keep the port
    # chosen the first time, else take the first free one from 16033 on.
    port=$(cat "$DB_DIR/port" 2>/dev/null || true)
    if [[ -z $port ]]; then
        port=16033
        while port_in_use "$port"; do port=$((port + 1)); done
        echo "$port" >"$DB_DIR/port"
    fi
    rm -f "$DB_DIR/mysqld.sock"
    spawn mariadb "$server" --no-defaults --user=root \
        --datadir="$DB_DIR/data" --socket="$DB_DIR/mysqld.sock" \
        --port="$port" --bind-address=127.0.0.1 --skip-name-resolve \
        --pid-file="$DB_DIR/mariadbd.pid" --log-error="$LOG_DIR/mariadb.log" \
        --innodb-buffer-pool-size=128M --innodb-log-file-size=16M \
        --innodb-lock-wait-timeout=900 \
        --max-allowed-packet=16M
    wait_for 60 "MariaDB" mysql_cli -e 'SELECT 1' || fail "MariaDB did not come up"
    log "MariaDB up (pid $(pid_of mariadb), 127.0.0.1:$port)"
}

setup_database() {
    local pass
    pass=$(cat "$CONF_DIR/dbpass")
    # shellcheck disable=SC2119
    mysql_cli <<SQL || fail "could not create the slurm_acct_db database / user"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
}

# ----------------------------------------------------------------- config ---

write_configs() {
    local cpus mem_total_mb real_mb pass dbport
    mkdir -p "$CONF_DIR" "$STATE_DIR/state" "$STATE_DIR/spool" "$STATE_DIR/run"
    chmod 0700 "$CONF_DIR"
    if [[ ! -s $CONF_DIR/dbpass ]]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$CONF_DIR/dbpass")
    fi
    pass=$(cat "$CONF_DIR/dbpass")
    dbport=$(cat "$DB_DIR/port")
    cpus=$(nproc)
    mem_total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    real_mb=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
    real_mb=$((real_mb - 2048))
    ((real_mb > mem_total_mb / 2)) || real_mb=$((mem_total_mb / 2))
    ((real_mb >= 512)) || real_mb=512

    cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER
# STATE_DIR=$STATE_DIR
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid
SlurmdPidFile=$STATE_DIR/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
# sacct shows --comment (the executor plugin puts rule and wildcards there)
AccountingStoreFlags=job_comment
GresTypes=gpu
# keep finished jobs visible to squeue/scontrol for 10 minutes
MinJobAge=600
MailProg=/bin/true
InactiveLimit=0
KillWait=5
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
# jobs without --mem must not take the whole node's memory
DefMemPerCPU=1000
# a node feature, so that tests can ask for it with --constraint (a run's `constraint`)
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mb Gres=gpu:1 Features=medrepro State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$CONF_DIR/gres.conf" <<EOF
$MARKER
# STATE_DIR=$STATE_DIR
# A fake GPU: jobs asking for one get CUDA_VISIBLE_DEVICES=0, torch finds none.
NodeName=$NODE Name=gpu File=/dev/null
EOF
    (umask 077 && cat >"$CONF_DIR/slurmdbd.conf" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=$NODE
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$STATE_DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$dbport
StorageUser=slurm
StoragePass=$pass
StorageLoc=slurm_acct_db
EOF
    )
    chown root:root "$CONF_DIR/slurmdbd.conf"
    chmod 0600 "$CONF_DIR/slurmdbd.conf"
}

# STATE_DIR recorded in a file we wrote earlier (empty if not ours)
owner_of() {
    [[ -f $1 ]] || return 0
    sed -n 's/^# STATE_DIR=//p' "$1" | head -n 1
}

install_etc_configs() {
    mkdir -p "$ETC_SLURM" "$BACKUP_DIR"
    local f target
    for f in "${MANAGED_ETC_FILES[@]}"; do
        target=$ETC_SLURM/$f
        if [[ -e $target ]] && ! grep -qF "$MARKER" "$target" && [[ ! -e $BACKUP_DIR/$f ]]; then
            log "backing up existing $target to $BACKUP_DIR/$f"
            cp -a "$target" "$BACKUP_DIR/$f"
        fi
        cp "$CONF_DIR/$f" "$target.tmp.$$"
        chmod 0644 "$target.tmp.$$"
        mv -f "$target.tmp.$$" "$target"
    done
}

restore_etc_configs() {
    local f target
    for f in "${MANAGED_ETC_FILES[@]}"; do
        target=$ETC_SLURM/$f
        if [[ -e $target ]] && grep -qF "$MARKER" "$target" &&
            [[ $(owner_of "$target") == "$STATE_DIR" ]]; then
            if [[ -e $BACKUP_DIR/$f ]]; then
                log "restoring $target from backup"
                cp -a "$BACKUP_DIR/$f" "$target"
                rm -f "$BACKUP_DIR/$f"
            else
                rm -f "$target"
            fi
        fi
    done
}

# ------------------------------------------------------------------ slurm ---

start_slurmdbd() {
    if alive slurmdbd; then
        log "slurmdbd already running (pid $(pid_of slurmdbd))"
    else
        port_in_use "$DBD_PORT" && fail "port $DBD_PORT (slurmdbd) is already in use by another process"
        # slurmdbd.conf is looked up next to SLURM_CONF
        SLURM_CONF=$CONF_DIR/slurm.conf spawn slurmdbd slurmdbd -D
    fi
    wait_for 90 "slurmdbd" sacctmgr -n list cluster || fail "slurmdbd did not come up"
    log "slurmdbd up (pid $(pid_of slurmdbd))"
}

# true if the output of command $2... has the exact line $1
listed() {
    local want=$1 out
    shift
    out=$("$@") || fail "$* failed"
    grep -qxF "$want" <<<"$out"
}

register_cluster() {
    if ! listed "$CLUSTER_NAME" sacctmgr -n -P list cluster format=cluster; then
        sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null || fail "sacctmgr add cluster failed"
    fi
}

register_account() {
    if ! listed "$ACCOUNT" sacctmgr -n -P list account format=account; then
        sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER_NAME" \
            Description="medrepro tests" Organization=medrepro >/dev/null ||
            fail "sacctmgr add account failed"
    fi
    if ! listed root sacctmgr -n -P list association cluster="$CLUSTER_NAME" \
        account="$ACCOUNT" user=root format=user; then
        sacctmgr -i add user root Account="$ACCOUNT" Cluster="$CLUSTER_NAME" >/dev/null ||
            fail "sacctmgr add user root failed"
    fi
}

start_slurmctld() {
    if alive slurmctld; then
        log "slurmctld already running (pid $(pid_of slurmctld))"
        scontrol reconfigure >/dev/null 2>&1 || true
        return 0
    fi
    port_in_use "$SLURMCTLD_PORT" && fail "port $SLURMCTLD_PORT (slurmctld) is already in use by another process"
    spawn slurmctld slurmctld -D
    wait_for 60 "slurmctld" scontrol ping || fail "slurmctld did not come up"
    log "slurmctld up (pid $(pid_of slurmctld))"
}

start_slurmd() {
    if alive slurmd; then
        log "slurmd already running (pid $(pid_of slurmd))"
        return 0
    fi
    port_in_use "$SLURMD_PORT" && fail "port $SLURMD_PORT (slurmd) is already in use by another process"
    spawn slurmd slurmd -D
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1; }

wait_node_idle() {
    local deadline=$((SECONDS + 60)) state resumed=0
    while :; do
        state=$(node_state || true)
        case $state in
            idle | mixed | allocated | completing) break ;;
            *drain* | down* | fail*)
                # a drained/down state can persist in StateSaveLocation
                if ((resumed < 3)); then
                    log "node is '$state'; resuming it"
                    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
                    resumed=$((resumed + 1))
                fi
                ;;
        esac
        alive slurmd || fail "slurmd exited"
        ((SECONDS < deadline)) || {
            sinfo -R >&2 || true
            fail "node $NODE did not become idle within 60 s (state: '${state:-?}')"
        }
        sleep 0.5
    done
    log "node $NODE is $state"
}

# ---------------------------------------------------------------- actions ---

all_alive() {
    local d
    for d in mariadb slurmdbd slurmctld slurmd; do alive "$d" || return 1; done
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1
}

do_start() {
    local t0=$SECONDS
    mkdir -p "$PID_DIR" "$LOG_DIR"
    ensure_packages
    if [[ $(id -u) -ne 0 ]]; then
        die "starting the test cluster needs root (it writes /etc/slurm and runs the daemons as root)" 77
    fi
    local owner
    owner=$(owner_of "$ETC_SLURM/slurm.conf")
    if [[ -n $owner && $owner != "$STATE_DIR" ]] &&
        STATE_DIR=$owner PID_DIR=$owner/pids DB_DIR=$owner/mysql alive slurmctld; then
        die "another test cluster (state dir $owner) is running; stop it first"
    fi
    if all_alive && [[ $owner == "$STATE_DIR" ]]; then
        log "cluster already running from $STATE_DIR"
        wait_node_idle
        return 0
    fi
    start_munge
    start_mariadb
    write_configs
    setup_database
    install_etc_configs
    start_slurmdbd
    register_cluster
    start_slurmctld
    start_slurmd
    wait_node_idle
    register_account
    sacct -n -X -S now-1hours >/dev/null 2>"$LOG_DIR/sacct-check.err" ||
        fail "sacct does not work: $(cat "$LOG_DIR/sacct-check.err")"
    cat >"$STATE_DIR/cluster.env" <<EOF
SLURM_TEST_CLUSTER=$CLUSTER_NAME
SLURM_TEST_NODE=$NODE
SLURM_TEST_PARTITION=$PARTITION
SLURM_TEST_ACCOUNT=$ACCOUNT
SLURM_TEST_STATE_DIR=$STATE_DIR
EOF
    log "cluster '$CLUSTER_NAME' up in $((SECONDS - t0)) s (node $NODE, partition $PARTITION, state $STATE_DIR)"
}

# TERM the given daemons together, wait up to 20 s, then KILL what is left
stop_group() {
    local name pid i left
    local -a pids=() names=()
    for name in "$@"; do
        if alive "$name"; then
            pid=$(pid_of "$name")
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$name")
        fi
        rm -f "$PID_DIR/$name.pid"
    done
    ((${#pids[@]})) || return 0
    for ((i = 0; i < 100; i++)); do
        left=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
        ((left)) || break
        sleep 0.2
    done
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[i]}" 2>/dev/null; then
            log "${names[i]} (pid ${pids[i]}) ignored TERM for 20 s; sending KILL"
            kill -KILL "${pids[i]}" 2>/dev/null || true
        fi
        log "stopped ${names[i]} (pid ${pids[i]})"
    done
}

do_stop() {
    # reverse start order: slurm daemons first, the database, munged last
    stop_group slurmd slurmctld
    stop_group slurmdbd
    stop_group mariadb munged
    restore_etc_configs
}

do_status() {
    local d rc=0 pid
    for d in "${DAEMONS[@]}"; do
        if alive "$d"; then
            pid=$(pid_of "$d")
            echo "$d: running (pid $pid)"
        elif [[ $d == munged ]] && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
            echo "$d: running (not managed by this script)"
        else
            echo "$d: not running"
            rc=3
        fi
    done
    if ((rc == 0)); then
        echo "node $NODE: $(node_state)"
    fi
    return $rc
}

case $ACTION in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    *) usage ;;
esac
