#!/usr/bin/env bash
# compare.sh: Warren, Apache ZooKeeper and etcd side by side, end to end: builds
# warren in release with the ZooKeeper and etcd drivers, starts fresh 3-member
# clusters of all three on loopback, runs `warren bench compare` (every workload
# on every system, one run at a time), saves the table and every report, and
# stops everything it started.
#
# Not part of the default test run. Run from anywhere in the repository; needs
# root the first time (peers.sh install: apt-get) and protoc for the build
# (Debian: apt-get install protobuf-compiler).
#
#   host/bench/compare.sh [options] [-- ARGS for `warren bench compare`]
#   host/bench/compare.sh -- --duration 3 --warmup 1     # a quick pass
#   host/bench/compare.sh -- --workloads set,get-local --clients 16
#
# Steps:
#   1. cargo build --release -p warren --features compare
#   2. host/bench/peers.sh: install (if missing), stop, wipe, start zookeeper and etcd
#   3. `warren dev --dir WARREN_DIR --zookeeper-port WARREN_ZK_PORT` with the
#      release binary, in the background
#      (WARREN_DIR is deleted first: every system starts empty), until a leader
#   4. warren bench compare --dev-dir WARREN_DIR --peers-dir PEERS_DIR
#        --zookeeper $(peers.sh endpoints zookeeper) --etcd $(peers.sh endpoints etcd) ARGS
#   5. on exit, success or not: SIGTERM to `warren dev` (it stops its nodes),
#      peers.sh stop all
#
# Options (before `--`) and environment:
#   --out DIR / RESULTS_DIR    where the results go (default target/bench-compare);
#                              each run writes DIR/<UTC time>/:
#                                compare.txt   the table (stdout of the run)
#                                compare.json  every report (--json-out)
#                                progress.log  the run's progress and errors (stderr)
#                                about.txt     commit, versions, machine, command line
#                                warren-dev.log
#   --no-build                 use the binary as built (CARGO_TARGET_DIR/release/warren)
#   --warren-port PORT / WARREN_PORT
#                              Warren's first port (UDP; default 7001, warren dev's own:
#                              7001-7003). Another one when a `warren dev` already runs
#                              on 7001-7003: the script then writes the dev directory's
#                              certificates (warren certs init) and n1-n3.toml and
#                              client.toml on PORT..PORT+2 itself, and warren dev, which
#                              keeps the files it finds, runs the cluster from them
#   WARREN_ZK_PORT             Warren's first ZooKeeper port (TCP; default 12181, as
#                              peers.sh's ZooKeeper takes 2181-2183): warren-zk, Warren
#                              driven through its ZooKeeper port by ZooKeeper's client
#   WARREN_DIR                 the warren dev directory (default /tmp/warren-compare)
#   PEERS_DIR                  peers.sh's data directory (default /tmp/warren-peers)
#   CARGO_TARGET_DIR           cargo's target directory (default target)
# All three clusters fsync; their data directories must be on a real disk (not
# tmpfs). Keep the machine otherwise idle: clients and servers share its cores.
set -euo pipefail

die() { echo "compare.sh: $*" >&2; exit 1; }
log() { echo "compare.sh: $*" >&2; }

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
    exit "${1:-0}"
}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEERS="$ROOT/host/bench/peers.sh"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/target/bench-compare}"
WARREN_DIR="${WARREN_DIR:-/tmp/warren-compare}"
WARREN_ZK_PORT="${WARREN_ZK_PORT:-12181}"
export PEERS_DIR="${PEERS_DIR:-/tmp/warren-peers}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WARREN="$TARGET_DIR/release/warren"
WARREN_PORT="${WARREN_PORT:-7001}"
BUILD=1
START_TIMEOUT=60

while (($#)); do
    case $1 in
    --out) RESULTS_DIR=${2:?--out needs a directory}; shift 2 ;;
    --out=*) RESULTS_DIR=${1#--out=}; shift ;;
    --no-build) BUILD=0; shift ;;
    --warren-port) WARREN_PORT=${2:?--warren-port needs a port}; shift 2 ;;
    --warren-port=*) WARREN_PORT=${1#--warren-port=}; shift ;;
    -h | --help | help) usage 0 ;;
    --) shift; break ;;
    *) usage 1 ;;
    esac
done
ARGS=("$@")
[[ $WARREN_PORT =~ ^[0-9]+$ ]] && ((WARREN_PORT >= 1024 && WARREN_PORT <= 65533)) ||
    die "--warren-port $WARREN_PORT is not a port from 1024 to 65533"

cd "$ROOT"
if ((BUILD)); then
    command -v protoc >/dev/null 2>&1 ||
        die "protoc is missing (etcd-client's build needs it): apt-get install -y protobuf-compiler"
    log "cargo build --release -p warren --features compare"
    cargo build --release -p warren --features compare
fi
[[ -x $WARREN ]] || die "$WARREN is missing: run without --no-build"

# Before starting anything: Warren's directory and ports must be free.
for f in "$WARREN_DIR"/n*.pid; do
    [[ -f $f ]] || continue
    pid=$(<"$f")
    if [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "serve --config $WARREN_DIR/"; then
        die "a warren node of $WARREN_DIR (pid $pid) is still running: stop its 'warren dev' first"
    fi
done
for port in "$WARREN_PORT" $((WARREN_PORT + 1)) $((WARREN_PORT + 2)); do
    if ss -Hulnp "sport = :$port" 2>/dev/null | grep -q .; then
        die "UDP port $port is taken (another warren dev?); give --warren-port with 3 free ports"
    fi
done

OUT="$RESULTS_DIR/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"

DEV_PID=""
cleanup() {
    local status=$?
    if [[ -n $DEV_PID ]] && kill -0 "$DEV_PID" 2>/dev/null; then
        log "stopping warren dev (pid $DEV_PID)"
        kill -TERM "$DEV_PID" 2>/dev/null || true
        wait "$DEV_PID" 2>/dev/null || true
    fi
    log "stopping ZooKeeper and etcd"
    "$PEERS" stop all >/dev/null 2>&1 || true
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ZooKeeper and etcd: fresh clusters.
"$PEERS" install >/dev/null
"$PEERS" stop all >/dev/null 2>&1
"$PEERS" wipe all
"$PEERS" start all >/dev/null
"$PEERS" status all

# Warren: a fresh dev cluster, run by the release binary.
rm -rf "${WARREN_DIR:?}"
if ((WARREN_PORT != 7001)); then
    # warren dev listens on 7001-7003 when it writes the files itself.
    "$WARREN" certs init --dir "$WARREN_DIR/certs" --nodes n1,n2,n3 --clients admin >/dev/null
    for i in 1 2 3; do
        {
            echo "# Written by host/bench/compare.sh (--warren-port); warren dev keeps it."
            echo "id = $i"
            echo "listen = \"127.0.0.1:$((WARREN_PORT + i - 1))\""
            echo "data_dir = \"data/n$i\""
            echo "zookeeper_listen = \"127.0.0.1:$((WARREN_ZK_PORT + i - 1))\""
            echo
            echo "[peers]"
            for j in 1 2 3; do
                ((j == i)) || echo "$j = \"127.0.0.1:$((WARREN_PORT + j - 1))\""
            done
            echo
            echo "[tls]"
            echo "ca = \"certs/ca.pem\""
            echo "cert = \"certs/n$i.pem\""
            echo "key = \"certs/n$i.key\""
        } >"$WARREN_DIR/n$i.toml"
    done
    {
        echo "servers = [\"127.0.0.1:$WARREN_PORT\", \"127.0.0.1:$((WARREN_PORT + 1))\", \"127.0.0.1:$((WARREN_PORT + 2))\"]"
        echo
        echo "[tls]"
        echo "ca = \"certs/ca.pem\""
        echo "cert = \"certs/admin.pem\""
        echo "key = \"certs/admin.key\""
    } >"$WARREN_DIR/client.toml"
fi
"$WARREN" dev --dir "$WARREN_DIR" --zookeeper-port "$WARREN_ZK_PORT" >"$OUT/warren-dev.log" 2>&1 &
DEV_PID=$!
log "warren dev (pid $DEV_PID) in $WARREN_DIR; waiting for a leader"
deadline=$((SECONDS + START_TIMEOUT))
until [[ -f $WARREN_DIR/client.toml ]] &&
    "$WARREN" --config "$WARREN_DIR/client.toml" status 2>/dev/null | grep -qw leader; do
    kill -0 "$DEV_PID" 2>/dev/null || die "warren dev exited; see $OUT/warren-dev.log"
    ((SECONDS < deadline)) || die "no warren leader after ${START_TIMEOUT}s; see $OUT/warren-dev.log"
    sleep 0.5
done
"$WARREN" --config "$WARREN_DIR/client.toml" status

{
    echo "date:      $(date -u +%FT%TZ)"
    echo "commit:    $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
    echo "command:   warren bench compare ${ARGS[*]}"
    echo "machine:   $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
    echo "load:      $(cut -d' ' -f1-3 /proc/loadavg)"
    "$PEERS" versions
} >"$OUT/about.txt"

log "warren bench compare ${ARGS[*]} (results in $OUT)"
"$WARREN" bench compare \
    --dev-dir "$WARREN_DIR" \
    --peers-dir "$PEERS_DIR" \
    --zookeeper "$("$PEERS" endpoints zookeeper)" \
    --etcd "$("$PEERS" endpoints etcd)" \
    --json-out "$OUT/compare.json" \
    "${ARGS[@]}" \
    >"$OUT/compare.txt" 2> >(tee "$OUT/progress.log" >&2)
cat "$OUT/compare.txt"
log "results: $OUT/compare.txt, $OUT/compare.json"
