#!/bin/sh
# bench/e2e.sh [EVENTS] [CONNECTIONS] [SIZE]: end-to-end figures for aaasd.
#
# Starts the local receiver over TLS (signature checks on, fsync off so
# that the receiver is not the bottleneck) and the daemon with durable
# sync, the hash chain and Ed25519 seals (a key from aaasctl keygen), writes
# EVENTS events of SIZE bytes over CONNECTIONS socket connections, waits
# until all are delivered and prints events/s, the daemon's CPU-seconds
# per million events and its peak RSS.  Also runs the corpus files.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${AAAS_BUILD:-$top/build}
events=${1:-1000000}
conns=${2:-16}
size=${3:-500}
work=$(mktemp -d /tmp/aaas-bench.XXXXXX)
py=/usr/bin/python3
corpus=${AAAS_SHARED_DIR:-$top/../shared}/corpus

cleanup() {
    [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null || true
    [ -n "${recv:-}" ] && kill "$recv" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$work/tls.key" -out "$work/tls.crt" -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 2>/dev/null
"$build/aaasctl" keygen -f "$work/signing.key" >/dev/null
"$py" "$top/tests/integration/firehose_receiver.py" --port 0 --no-fsync \
    --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
    --out "$work/out" --access-key AKIDBENCH --secret-key bench-secret \
    >"$work/receiver.out" 2>"$work/receiver.log" &
recv=$!
for _ in $(seq 50); do
    grep -q '^listening' "$work/receiver.out" 2>/dev/null && break
    sleep 0.1
done
port=$(awk '/^listening/ { print $3 }' "$work/receiver.out")

stored() {
    curl -s --cacert "$work/tls.crt" "https://127.0.0.1:$port/_stats" |
        "$py" -c 'import json,sys; print(json.load(sys.stdin)["newlines_stored"])'
}

# cpu PID: utime + stime in seconds
cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' \
        "/proc/$1/stat"
}

run() {
    name=$1
    base=$2
    want=$3
    shift 3
    start=$(date +%s.%N)
    "$@"
    while [ "$(stored)" -lt $((base + want)) ]; do sleep 0.2; done
    end=$(date +%s.%N)
    c=$(cpu "$daemon")
    hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$daemon/status")
    awk -v n="$want" -v s="$start" -v e="$end" -v c="$c" -v h="$hwm" \
        -v name="$name" 'BEGIN {
        printf "%s: %d events in %.2f s = %.0f events/s; daemon CPU %.2f s" \
               " = %.2f CPU-s per million; peak RSS %.1f MiB\n",
               name, n, e - s, n / (e - s), c, c * 1e6 / n, h / 1024 }'
}

start_daemon() {
    cat >"$work/aaas.conf" <<CONF
state_dir = "$work/state"
agent_id = "bench"
log_level = "notice"
spool { dir = "$work/spool" max_size = "4G" }
socket { path = "$work/auditd.sock" }
$1
firehose {
    stream = "audit-events"
    region = "us-east-1"
    endpoint = "https://127.0.0.1:$port"
    ca_file = "$work/tls.crt"
}
signing { key = "$work/signing.key" }
CONF
    env AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret \
        AWS_EC2_METADATA_DISABLED=true \
        "$build/aaasd" -c "$work/aaas.conf" 2>"$work/aaasd.log" &
    daemon=$!
    for _ in $(seq 50); do [ -S "$work/auditd.sock" ] && break; sleep 0.1; done
    idle=$(awk '/VmRSS/ { print $2 }' "/proc/$daemon/status")
    echo "idle RSS $(awk -v k="$idle" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
}

stop_daemon() {
    kill -TERM "$daemon"
    wait "$daemon" || true
    daemon=
    rm -rf "$work/spool" "$work/state"
}

if [ -d "$corpus" ]; then
    mkdir -p "$work/logs"
    find "$corpus" -name '*.jsonl' | sort | while read -r f; do
        rel=${f#"$corpus"/}
        cp "$f" "$work/logs/$(echo "$rel" | tr / _).log"
    done
    n=$(cat "$work"/logs/*.log | "$py" -c \
        'import sys; print(sum(1 for l in sys.stdin.buffer.read().split(b"\n") if l))')
    start_daemon "input \"corpus\" { path = \"$work/logs/*.log\" partial_timeout = 200 }"
    run corpus 0 "$n" true
    stop_daemon
    before=$(stored)
else
    before=0
fi

start_daemon ""
run "socket x$conns" "$before" "$events" \
    "$build/bench/loadgen" "$work/auditd.sock" "$events" "$conns" "$size"
stop_daemon
