#!/usr/bin/env bash
# peers.sh: install, start, stop and check the systems `warren bench` compares
# Warren with: Apache ZooKeeper and etcd, from Debian's packages, as 3-member
# clusters on loopback, with fsync on as their defaults have it.
#
# Not part of the default test run. Needs root for `install` (apt-get); the
# clusters themselves run as the calling user in a scratch directory.
#
#   host/bench/peers.sh install                  # apt-get: zookeeper, etcd-server, etcd-client
#   host/bench/peers.sh start zookeeper|etcd|all # idempotent: starts the members that are down
#   host/bench/peers.sh stop zookeeper|etcd|all  # SIGTERM, then SIGKILL after 20 s
#   host/bench/peers.sh status [zookeeper|etcd|all]
#   host/bench/peers.sh endpoints zookeeper|etcd # one line: host:port,host:port,host:port
#   host/bench/peers.sh pids zookeeper|etcd      # one server pid a line (for /proc/<pid>/stat)
#   host/bench/peers.sh kill zookeeper|etcd N    # SIGKILL member N (1-3), for fail-over tests
#   host/bench/peers.sh verify zookeeper|etcd|all  # 3 members with one leader; a write through one
#                                                # member read through all; SIGKILL of the leader,
#                                                # the 2 survivors elect a leader and take a write;
#                                                # the killed member restarts and reads that write
#   host/bench/peers.sh versions                 # the installed Debian versions
#   host/bench/peers.sh wipe zookeeper|etcd|all  # delete a stopped cluster's data
#
# Wipe between benchmark series: data only grows (a 10 s create run at 64
# clients adds ~50k 1 KiB znodes; after one series each ZooKeeper member held
# 1.1-1.5 GB of logs and snapshots, each etcd member 400 MB, and etcd stops
# taking writes at its default 2 GiB backend quota).
#
# Options (before the command) and environment:
#   --dir DIR / PEERS_DIR   scratch data directory (default /tmp/warren-peers);
#                           it must be on a real disk (not tmpfs) for the fsyncs to mean anything
#   ZK_HEAP                 ZooKeeper heap per member, used as -Xms and -Xmx (default 1g;
#                           upstream's zkServer.sh uses -Xmx1000m, Debian's sets none, which
#                           would let each JVM grow to a quarter of RAM)
#
# Layout of DIR:
#   zookeeper/zkN/{zoo.cfg,data/,server.log}  zookeeper/zkN.pid   (N = 1..3)
#   etcd/eN/{data/,server.log}                etcd/eN.pid
#
# Ports (loopback only):
#   ZooKeeper: clients 2181, 2182, 2183; quorum 2888-2890; election 3888-3890;
#              the AdminServer (Jetty, 8080 by default for every member) is off
#   etcd:      clients 2379, 2389, 2399; peers 2380, 2390, 2400
# `start` refuses to run if another process holds one of them (a system-wide
# etcd or zookeeperd, say).
#
# What is deliberately left at the packages' defaults: ZooKeeper's forceSync
# (yes: fsync of the transaction log before acknowledging), snapCount,
# preAllocSize, globalOutstandingLimit, tickTime/initLimit/syncLimit as in
# Debian's example zoo.cfg; etcd's fsync of WAL and backend (no
# --unsafe-no-fsync), snapshot-count, heartbeat and election timeouts, quota.
# What is set, and why:
#   ZooKeeper: 4lw.commands.whitelist (srvr, mntr, ... so status/verify can ask
#     each member its role over the client port), admin.enableServer=false (three
#     members would fight over port 8080), maxClientCnxns=0 (the default, 60
#     connections per client IP per member, would refuse a 64-client run from
#     127.0.0.1 once sessions pile onto one member), a fixed heap (ZK_HEAP), no
#     JMX agent, logging through slf4j-simple at INFO to server.log (Debian's
#     zookeeper.jar has no slf4j binding on its class path and would log nothing).
#   etcd: --logger zap (3.4's default capnslog logger is deprecated and warns).
set -euo pipefail

PEERS_DIR="${PEERS_DIR:-/tmp/warren-peers}"
ZK_HEAP="${ZK_HEAP:-1g}"
ZK_CLIENT_PORTS=(2181 2182 2183)
ZK_QUORUM_PORTS=(2888 2889 2890)
ZK_ELECTION_PORTS=(3888 3889 3890)
ETCD_CLIENT_PORTS=(2379 2389 2399)
ETCD_PEER_PORTS=(2380 2390 2400)
ZK_JARS=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar
STOP_TIMEOUT=20
START_TIMEOUT=90

die() { echo "peers.sh: $*" >&2; exit 1; }
log() { echo "peers.sh: $*" >&2; }

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
    exit "${1:-0}"
}

# ---------------------------------------------------------------- install

cmd_install() {
    local missing=()
    command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
    dpkg-query -W -f='${Status}' zookeeper 2>/dev/null | grep -q 'install ok installed' || missing+=(zookeeper)
    dpkg-query -W -f='${Status}' etcd-server 2>/dev/null | grep -q 'install ok installed' || missing+=(etcd-server)
    dpkg-query -W -f='${Status}' etcd-client 2>/dev/null | grep -q 'install ok installed' || missing+=(etcd-client)
    if ((${#missing[@]} == 0)); then
        log "already installed"
    else
        [[ $(id -u) == 0 ]] || die "install needs root (apt-get install ${missing[*]})"
        log "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # Debian's etcd-server postinst would start a system-wide etcd on 2379
        # where invoke-rc.d is allowed to; containers forbid it (policy-rc.d), and
        # on a full system `peers.sh install` stops it again below.
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
        log "stopping and disabling the system etcd service (it holds port 2379)"
        systemctl disable --now etcd || true
    fi
    cmd_versions
}

cmd_versions() {
    local p v
    for p in zookeeper libzookeeper-java etcd-server etcd-client; do
        v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
        printf '%-18s %s\n' "$p" "${v:-not installed}"
    done
    if command -v java >/dev/null 2>&1; then
        printf '%-18s %s\n' java "$(java -version 2>&1 | head -n 1)"
    fi
}

need_installed() {
    case $1 in
    zookeeper)
        if [[ ! -f /usr/share/java/zookeeper.jar ]] || ! command -v java >/dev/null 2>&1; then
            die "ZooKeeper is not installed: run '$0 install'"
        fi
        ;;
    etcd)
        if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
            die "etcd is not installed: run '$0 install'"
        fi
        ;;
    esac
}

# ---------------------------------------------------------------- processes

pid_file() { # system member
    case $1 in
    zookeeper) echo "$PEERS_DIR/zookeeper/zk$2.pid" ;;
    etcd) echo "$PEERS_DIR/etcd/e$2.pid" ;;
    esac
}

# The live pid of a member, or nothing. A pid file whose process is gone, or
# whose pid now belongs to another program, counts as no process.
member_pid() { # system member
    local f pid cmdline
    f=$(pid_file "$1" "$2")
    [[ -f $f ]] || return 0
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 0
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
    case $1 in
    zookeeper) [[ $cmdline == *QuorumPeerMain*"zk$2/zoo.cfg"* ]] && echo "$pid" ;;
    etcd) [[ $cmdline == *etcd*"--name e$2 "* ]] && echo "$pid" ;;
    esac
    return 0
}

# Start a command detached in its own session, stdout/stderr to a log file,
# and record its pid.
spawn() { # pidfile logfile command...
    local pidfile=$1 logfile=$2
    shift 2
    setsid "$@" </dev/null >>"$logfile" 2>&1 &
    echo $! >"$pidfile"
}

# True if something accepts connections on 127.0.0.1:PORT.
port_busy() { # port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Dies if a port member N of a system needs is taken by another program (a
# system-wide etcd or zookeeperd, another benchmark, ...).
check_ports_free() { # system member
    local ports p
    case $1 in
    zookeeper) ports="${ZK_CLIENT_PORTS[$2 - 1]} ${ZK_QUORUM_PORTS[$2 - 1]} ${ZK_ELECTION_PORTS[$2 - 1]}" ;;
    etcd) ports="${ETCD_CLIENT_PORTS[$2 - 1]} ${ETCD_PEER_PORTS[$2 - 1]}" ;;
    esac
    for p in $ports; do
        if port_busy "$p"; then
            die "$1 member $2: 127.0.0.1:$p is already in use by another process"
        fi
    done
}

# ---------------------------------------------------------------- ZooKeeper

zk_write_config() { # member
    local n=$1 dir="$PEERS_DIR/zookeeper/zk$1" i
    mkdir -p "$dir/data"
    [[ -f $dir/data/myid ]] || echo "$n" >"$dir/data/myid"
    {
        echo "# Written by host/bench/peers.sh. forceSync is left at its default (yes)."
        echo "tickTime=2000"
        echo "initLimit=10"
        echo "syncLimit=5"
        echo "dataDir=$dir/data"
        echo "clientPort=${ZK_CLIENT_PORTS[n - 1]}"
        echo "clientPortAddress=127.0.0.1"
        echo "maxClientCnxns=0"
        echo "admin.enableServer=false"
        echo "4lw.commands.whitelist=srvr,stat,mntr,ruok,conf,cons,wchs"
        for i in 1 2 3; do
            echo "server.$i=127.0.0.1:${ZK_QUORUM_PORTS[i - 1]}:${ZK_ELECTION_PORTS[i - 1]}"
        done
    } >"$dir/zoo.cfg"
}

zk_start_member() { # member
    local n=$1 dir="$PEERS_DIR/zookeeper/zk$1"
    zk_write_config "$n"
    spawn "$(pid_file zookeeper "$n")" "$dir/server.log" \
        java "-Xms$ZK_HEAP" "-Xmx$ZK_HEAP" \
        -XX:+HeapDumpOnOutOfMemoryError "-XX:HeapDumpPath=$dir" \
        -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
        -Dorg.slf4j.simpleLogger.showDateTime=true \
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss.SSS" \
        -cp "$ZK_JARS" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
}

# A four-letter word sent to a member's client port; prints the answer.
zk_4lw() { # member word
    local port=${ZK_CLIENT_PORTS[$1 - 1]}
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
        printf %s "$1" >&3
        cat <&3' "$port" "$2" 2>/dev/null || true
}

# One zkCli command (org.apache.zookeeper.ZooKeeperMain, which needs no jline
# when given a command) against member N; prints the command's output.
zk_cli() { # member command args...
    local port=${ZK_CLIENT_PORTS[$1 - 1]}
    shift
    java -Dorg.slf4j.simpleLogger.defaultLogLevel=error -cp "$ZK_JARS" \
        org.apache.zookeeper.ZooKeeperMain -server "127.0.0.1:$port" "$@" 2>/dev/null |
        grep -v -E '^(Connecting to|WATCHER::|WatchedEvent|$)' || true
}

# Reads a node through member N until it holds the value (reads are local to
# a member, which may lag the leader by a moment); fails after 5 tries.
zk_expect() { # member path value
    local i got
    for i in 1 2 3 4 5; do
        got=$(zk_cli "$1" get "$2")
        [[ $got == "$3" ]] && return 0
        sleep 0.2
    done
    die "zookeeper: member $1 read '$got' at $2, wanted '$3' (after $i tries)"
}

zk_mode() { # member -> leader|follower|standalone|(empty)
    zk_4lw "$1" srvr | sed -n 's/^Mode: //p'
}

# Wait until every running member answers with a role and there is exactly
# one leader among them; fails after START_TIMEOUT seconds.
zk_wait_quorum() { # expected-members
    local want=$1 deadline=$((SECONDS + START_TIMEOUT)) n mode leaders up
    while ((SECONDS < deadline)); do
        leaders=0 up=0
        for n in 1 2 3; do
            mode=$(zk_mode "$n")
            case $mode in
            leader) leaders=$((leaders + 1)) up=$((up + 1)) ;;
            follower) up=$((up + 1)) ;;
            standalone) die "zk$n runs standalone: its zoo.cfg lost the server.N lines" ;;
            esac
        done
        if ((leaders == 1 && up >= want)); then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

# ---------------------------------------------------------------- etcd

etcd_initial_cluster() {
    local i out=""
    for i in 1 2 3; do
        out+="${out:+,}e$i=http://127.0.0.1:${ETCD_PEER_PORTS[i - 1]}"
    done
    echo "$out"
}

etcd_start_member() { # member
    local n=$1 dir="$PEERS_DIR/etcd/e$1" cport pport
    cport=${ETCD_CLIENT_PORTS[n - 1]}
    pport=${ETCD_PEER_PORTS[n - 1]}
    mkdir -p "$dir"
    # --initial-cluster* are read only when the data dir is new; a restarted
    # member rejoins from its data.
    spawn "$(pid_file etcd "$n")" "$dir/server.log" \
        etcd --name "e$n" --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$cport" \
        --advertise-client-urls "http://127.0.0.1:$cport" \
        --listen-peer-urls "http://127.0.0.1:$pport" \
        --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "$(etcd_initial_cluster)" \
        --initial-cluster-token warren-peers \
        --initial-cluster-state new \
        --logger zap --log-outputs stderr
}

etcd_endpoints_urls() {
    local p out=""
    for p in "${ETCD_CLIENT_PORTS[@]}"; do out+="${out:+,}http://127.0.0.1:$p"; done
    echo "$out"
}

etcdctl_() { ETCDCTL_API=3 etcdctl --dial-timeout=2s --command-timeout=5s "$@"; }

# Leader of the cluster as seen by member N: prints the member's own id and
# the leader id, or nothing if it does not answer.
etcd_member_status() { # member -> "id leader raftterm"
    local port=${ETCD_CLIENT_PORTS[$1 - 1]} json
    json=$(etcdctl_ --endpoints="http://127.0.0.1:$port" endpoint status -w json 2>/dev/null) || return 0
    # [{"Endpoint":...,"Status":{"header":{"cluster_id":..,"member_id":M,..,"raft_term":T},..,"leader":L,...}}]
    local id leader term
    id=$(grep -o '"member_id":[0-9]*' <<<"$json" | head -n 1 | cut -d: -f2)
    leader=$(grep -o '"leader":[0-9]*' <<<"$json" | head -n 1 | cut -d: -f2)
    term=$(grep -o '"raft_term":[0-9]*' <<<"$json" | head -n 1 | cut -d: -f2)
    [[ -n $id && -n $leader ]] && echo "$id $leader $term"
    return 0
}

etcd_mode() { # member -> leader|follower|(empty)
    local s
    s=$(etcd_member_status "$1")
    [[ -n $s ]] || return 0
    read -r id leader _ <<<"$s"
    if [[ $leader == 0 ]]; then
        echo "no-leader"
    elif [[ $id == "$leader" ]]; then
        echo leader
    else
        echo follower
    fi
}

etcd_wait_quorum() { # expected-members
    local want=$1 deadline=$((SECONDS + START_TIMEOUT)) n mode leaders up
    while ((SECONDS < deadline)); do
        leaders=0 up=0
        for n in 1 2 3; do
            [[ -n $(member_pid etcd "$n") ]] || continue
            mode=$(etcd_mode "$n")
            case $mode in
            leader) leaders=$((leaders + 1)) up=$((up + 1)) ;;
            follower) up=$((up + 1)) ;;
            esac
        done
        if ((leaders == 1 && up >= want)); then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

# ---------------------------------------------------------------- commands

systems_of() { # zookeeper|etcd|all
    case ${1:-} in
    zookeeper | zk) echo zookeeper ;;
    etcd) echo etcd ;;
    all) echo zookeeper etcd ;;
    *) die "unknown system '${1:-}': zookeeper, etcd or all" ;;
    esac
}

running_count() { # system
    local n c=0
    for n in 1 2 3; do [[ -z $(member_pid "$1" "$n") ]] || c=$((c + 1)); done
    echo "$c"
}

start_system() { # system
    local sys=$1 n started=0
    need_installed "$sys"
    mkdir -p "$PEERS_DIR/$sys"
    for n in 1 2 3; do
        [[ -n $(member_pid "$sys" "$n") ]] || check_ports_free "$sys" "$n"
    done
    for n in 1 2 3; do
        if [[ -n $(member_pid "$sys" "$n") ]]; then
            continue
        fi
        case $sys in
        zookeeper) zk_start_member "$n" ;;
        etcd) etcd_start_member "$n" ;;
        esac
        started=$((started + 1))
    done
    log "$sys: started $started member(s); waiting for a 3-member quorum"
    if ! "${sys/zookeeper/zk}_wait_quorum" 3; then
        log "$sys: no 3-member quorum after ${START_TIMEOUT}s; the last lines of each log:"
        for n in 1 2 3; do
            tail -n 5 "$PEERS_DIR/$sys/"*"$n/server.log" >&2 || true
        done
        return 1
    fi
    status_system "$sys"
}

stop_system() { # system
    local sys=$1 n pid pids=() deadline
    for n in 1 2 3; do
        pid=$(member_pid "$sys" "$n")
        if [[ -n $pid ]]; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    deadline=$((SECONDS + STOP_TIMEOUT))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$sys: pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for n in 1 2 3; do rm -f "$(pid_file "$sys" "$n")"; done
    log "$sys: stopped (${#pids[@]} member(s) were running)"
}

endpoints() { # system
    case $1 in
    zookeeper) echo "127.0.0.1:${ZK_CLIENT_PORTS[0]},127.0.0.1:${ZK_CLIENT_PORTS[1]},127.0.0.1:${ZK_CLIENT_PORTS[2]}" ;;
    etcd) echo "127.0.0.1:${ETCD_CLIENT_PORTS[0]},127.0.0.1:${ETCD_CLIENT_PORTS[1]},127.0.0.1:${ETCD_CLIENT_PORTS[2]}" ;;
    esac
}

status_system() { # system
    local sys=$1 n pid mode port
    echo "$sys: endpoints $(endpoints "$sys")  (data: $PEERS_DIR/$sys)"
    for n in 1 2 3; do
        pid=$(member_pid "$sys" "$n")
        case $sys in
        zookeeper) port=${ZK_CLIENT_PORTS[n - 1]} ;;
        etcd) port=${ETCD_CLIENT_PORTS[n - 1]} ;;
        esac
        if [[ -z $pid ]]; then
            printf '  member %d  127.0.0.1:%-5s  down\n' "$n" "$port"
            continue
        fi
        case $sys in
        zookeeper) mode=$(zk_mode "$n") ;;
        etcd) mode=$(etcd_mode "$n") ;;
        esac
        printf '  member %d  127.0.0.1:%-5s  pid %-7s %s\n' "$n" "$port" "$pid" "${mode:-not answering}"
    done
}

# Quorum formed with three members, a write through one member is read from
# every member, and after SIGKILL of the leader the two others elect a new
# leader and take a write; the killed member then restarts and catches up.
verify_system() { # system
    local sys=$1 n leader="" mode key val got
    need_installed "$sys"
    [[ $(running_count "$sys") == 3 ]] || die "$sys: start it first (3 members must run)"
    "${sys/zookeeper/zk}_wait_quorum" 3 || die "$sys: no 3-member quorum"
    for n in 1 2 3; do
        case $sys in
        zookeeper) mode=$(zk_mode "$n") ;;
        etcd) mode=$(etcd_mode "$n") ;;
        esac
        [[ $mode == leader ]] && leader=$n
    done
    [[ -n $leader ]] || die "$sys: no leader"
    echo "$sys: quorum of 3, leader is member $leader"
    key="warren-peers-check-$$"
    case $sys in
    zookeeper)
        zk_4lw "$leader" mntr | grep -E '^zk_(server_state|synced_followers|quorum_size|version)' | sed 's/^/  /'
        zk_4lw "$leader" conf | grep -E '^(dataDir|maxClientCnxns)' | sed 's/^/  /' || true
        val="v-$RANDOM"
        zk_cli 1 create "/$key" "$val" >/dev/null
        for n in 1 2 3; do zk_expect "$n" "/$key" "$val"; done
        echo "  a create through member 1 is read through members 1, 2 and 3"
        ;;
    etcd)
        etcdctl_ --endpoints="$(etcd_endpoints_urls)" endpoint status -w table
        val="v-$RANDOM"
        etcdctl_ --endpoints="http://127.0.0.1:${ETCD_CLIENT_PORTS[0]}" put "$key" "$val" >/dev/null
        for n in 1 2 3; do
            got=$(etcdctl_ --endpoints="http://127.0.0.1:${ETCD_CLIENT_PORTS[n - 1]}" get --print-value-only "$key")
            [[ $got == "$val" ]] || die "etcd: member $n read '$got', wanted '$val'"
        done
        echo "  a put through member 1 is read (linearizably) through members 1, 2 and 3"
        ;;
    esac

    echo "$sys: SIGKILL of the leader, member $leader (pid $(member_pid "$sys" "$leader"))"
    kill -KILL "$(member_pid "$sys" "$leader")"
    local t0=$SECONDS
    while [[ -n $(member_pid "$sys" "$leader") ]]; do sleep 0.05; done
    "${sys/zookeeper/zk}_wait_quorum" 2 || die "$sys: the 2 survivors elected no leader"
    for n in 1 2 3; do
        [[ $n == "$leader" ]] && continue
        case $sys in
        zookeeper) mode=$(zk_mode "$n") ;;
        etcd) mode=$(etcd_mode "$n") ;;
        esac
        echo "  member $n: $mode"
    done
    echo "  new leader within $((SECONDS - t0)) s"
    local survivor
    for n in 1 2 3; do [[ $n == "$leader" ]] || survivor=$n; done
    val="v-$RANDOM"
    if [[ $sys == zookeeper ]]; then
        zk_cli "$survivor" set "/$key" "$val" >/dev/null
        zk_expect "$survivor" "/$key" "$val"
        echo "  the 2 survivors take a set (through member $survivor)"
    else
        etcdctl_ --endpoints="http://127.0.0.1:${ETCD_CLIENT_PORTS[survivor - 1]}" put "$key" "$val" >/dev/null
        got=$(etcdctl_ --endpoints="http://127.0.0.1:${ETCD_CLIENT_PORTS[survivor - 1]}" get --print-value-only "$key")
        [[ $got == "$val" ]] || die "etcd: after the kill member $survivor read '$got', wanted '$val'"
        echo "  the 2 survivors take a put and a linearizable get"
    fi
    echo "$sys: restarting member $leader"
    start_system "$sys" >/dev/null
    "${sys/zookeeper/zk}_wait_quorum" 3 || die "$sys: member $leader did not rejoin"
    if [[ $sys == zookeeper ]]; then
        zk_expect "$leader" "/$key" "$val"
        zk_cli "$leader" delete "/$key" >/dev/null
        echo "  the restarted member reads the set made while it was down"
    else
        got=$(etcdctl_ --endpoints="http://127.0.0.1:${ETCD_CLIENT_PORTS[leader - 1]}" get --print-value-only "$key")
        [[ $got == "$val" ]] || die "etcd: the restarted member read '$got', wanted '$val'"
        etcdctl_ --endpoints="$(etcd_endpoints_urls)" del "$key" >/dev/null
        echo "  the restarted member reads the write made while it was down"
    fi
    status_system "$sys"
    echo "$sys: verified"
}

main() {
    while (($#)); do
        case $1 in
        --dir) PEERS_DIR=${2:?--dir needs a directory}; shift 2 ;;
        --dir=*) PEERS_DIR=${1#--dir=}; shift ;;
        -h | --help | help) usage 0 ;;
        *) break ;;
        esac
    done
    (($#)) || usage 1
    local cmd=$1 sys systems n pid
    shift
    case $cmd in
    install) cmd_install; return ;;
    versions) cmd_versions; return ;;
    start | endpoints | pids | kill | wipe) systems=$(systems_of "${1:-}") ;;
    stop | status | verify) systems=$(systems_of "${1:-all}") ;;
    *) usage 1 ;;
    esac
    case $cmd in
    start) for sys in $systems; do start_system "$sys"; done ;;
    stop) for sys in $systems; do stop_system "$sys"; done ;;
    status) for sys in $systems; do status_system "$sys"; done ;;
    verify) for sys in $systems; do verify_system "$sys"; done ;;
    endpoints) for sys in $systems; do endpoints "$sys"; done ;;
    pids) for sys in $systems; do for n in 1 2 3; do member_pid "$sys" "$n"; done; done ;;
    kill)
        [[ $systems != *" "* ]] || die "kill: name one system"
        [[ ${2:-} =~ ^[123]$ ]] || die "kill $systems N: N is 1, 2 or 3"
        pid=$(member_pid "$systems" "$2")
        [[ -n $pid ]] || die "$systems member $2 is not running"
        kill -KILL "$pid"
        echo "$systems: member $2 (pid $pid) killed"
        ;;
    wipe)
        for sys in $systems; do
            [[ $(running_count "$sys") == 0 ]] || die "$sys is running: stop it first"
        done
        for sys in $systems; do
            rm -rf "${PEERS_DIR:?}/$sys"
            log "$sys: data deleted"
        done
        ;;
    esac
}

main "$@"
