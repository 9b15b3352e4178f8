#!/bin/sh
# bench/socket.sh [EVENTS] [SIZE]: socket intake into the durable spool.
#
# For 1, 16 and 256 writers, without and with acknowledgements, starts a
# fresh daemon, writes EVENTS events of SIZE bytes with bench/loadgen and
# waits until the daemon reports them all durable in the spool.  Prints
# events/s, the daemon's CPU-seconds per million events (utime + stime
# from /proc/PID/stat) and its peak RSS (VmHWM).  The sink is a closed
# loopback port with an hour's retry delay, so sending costs nothing and
# the figures are the socket and the spool alone.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${AAAS_BUILD:-$top}
events=${1:-200000}
size=${2:-500}
work=$(mktemp -d /tmp/aaas-sockbench.XXXXXX)

cleanup() {
    [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' \
        "/proc/$1/stat"
}

accepted() {
    "$build/aaasctl" -s "$work/control.sock" status --json |
        /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["events"]["accepted"])'
}

start_daemon() {
    rm -rf "$work/spool" "$work/state"
    cat >"$work/aaas.conf" <<CONF
state_dir = "$work/state"
agent_id = "bench"
log_level = "notice"
spool { dir = "$work/spool" max_size = "4G" }
socket { path = "$work/auditd.sock" max_connections = 1024 }
control { path = "$work/control.sock" }
firehose {
    stream = "audit-events"
    region = "us-east-1"
    endpoint = "http://127.0.0.1:9"
    retry_initial = 3600000
    retry_max = 3600000
}
CONF
    env AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret \
        AWS_EC2_METADATA_DISABLED=true \
        "$build/aaasd" -c "$work/aaas.conf" 2>"$work/aaasd.log" &
    daemon=$!
    for _ in $(seq 100); do
        [ -S "$work/auditd.sock" ] && [ -S "$work/control.sock" ] && break
        sleep 0.1
    done
}

stop_daemon() {
    kill -TERM "$daemon"
    wait "$daemon" || true
    daemon=
}

for mode in "" --ack; do
    for conns in 1 16 256; do
        start_daemon
        idle=$(awk '/VmRSS/ { print $2 }' "/proc/$daemon/status")
        c0=$(cpu "$daemon")
        t0=$(date +%s.%N)
        "$build/bench/loadgen" $mode "$work/auditd.sock" "$events" "$conns" \
            "$size" >/dev/null
        while [ "$(accepted)" -lt "$events" ]; do sleep 0.05; done
        t1=$(date +%s.%N)
        c1=$(cpu "$daemon")
        hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$daemon/status")
        awk -v n="$events" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" \
            -v h="$hwm" -v i="$idle" -v w="$conns" \
            -v m="${mode:-no-ack}" 'BEGIN {
            printf "%-6s %3d writers: %7.0f events/s, %.2f CPU-s per " \
                   "million, idle RSS %.1f MiB, peak RSS %.1f MiB\n",
                   m, w, n / (t1 - t0), (c1 - c0) * 1e6 / n, i / 1024,
                   h / 1024 }'
        stop_daemon
    done
done
