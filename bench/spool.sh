#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Spool figures with the default sync policy (always, group commit):
# intake in events/s and MB/s for 1, 16 and 256 socket writers of
# 500-byte events, fdatasync calls per second (strace), the daemon's CPU
# seconds per million events, and recovery time for a spool of about
# 1 GiB.  The sink is a closed loopback port, so the figures are the
# spool's and the inputs', not the network's.
#
#   bench/spool.sh [BUILD_DIR]        EVENTS=... (default 200000)
#   OUTAGE=1 bench/spool.sh           also the 1,000,000-event outage test
set -eu

build=$(cd "${1:-.}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
aaasd=$build/aaasd
loadgen=$build/bench/loadgen
events=${EVENTS:-200000}
tmp=$(mktemp -d /tmp/aaas-bench.XXXXXX)
pid=

cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

export AWS_ACCESS_KEY_ID=AKIAAAASBENCH0000001
export AWS_SECRET_ACCESS_KEY=bench-secret
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=$tmp/none AWS_SHARED_CREDENTIALS_FILE=$tmp/none
unset NOTIFY_SOCKET

config() {
    cat > "$tmp/aaas.conf" <<CONF
state_dir = "$tmp/state"
log_level = "info"
spool { dir = "$tmp/spool" max_size = "4G" }
socket { path = "$tmp/sock" }
firehose { stream = "bench" region = "us-east-1"
           endpoint = "http://127.0.0.1:9" retry_max = 60000 }
CONF
}

# Starts aaasd (under strace when $1 is a file name) and waits for it.
start() {
    : > "$tmp/log"
    if [ -n "${1:-}" ]; then
        strace -f -c -e trace=fdatasync -o "$1" \
            "$aaasd" -c "$tmp/aaas.conf" 2>"$tmp/log" &
    else
        "$aaasd" -c "$tmp/aaas.conf" 2>"$tmp/log" &
    fi
    pid=$!
    for _ in $(seq 600); do
        grep -q "started" "$tmp/log" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "aaasd did not start:" >&2
    cat "$tmp/log" >&2
    exit 1
}

# SIGTERM to the daemon itself; strace, if any, ends with it.
stop() {
    kill -TERM "$(daemon_pid)"
    wait "$pid" || true
    pid=
}

# Waits until the spool has stopped growing: the last event is written.
settle() {
    last=-1
    same=0
    while [ "$same" -lt 3 ]; do
        sz=$(du -sb "$tmp/spool" | cut -f1)
        if [ "$sz" = "$last" ]; then
            same=$((same + 1))
        else
            same=0
        fi
        last=$sz
        sleep 0.01
    done
}

# utime + stime of the daemon (and its threads), in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# The daemon's own pid: strace forks it as its child.
daemon_pid() {
    p=$(pgrep -P "$pid" -x aaasd || true)
    echo "${p:-$pid}"
}

now() {
    date +%s.%N
}

hz=$(getconf CLK_TCK)
echo "events per run: $events of 500 bytes"
printf '%8s %12s %8s %12s %14s\n' writers events/s MB/s fdatasync/s \
    cpu-s/Mevent
for writers in 1 16 256; do
    rm -rf "$tmp/spool" "$tmp/state"
    config
    start "$tmp/strace.$writers"
    dpid=$(daemon_pid)
    c0=$(cpu_ticks "$dpid")
    t0=$(now)
    "$loadgen" "$tmp/sock" "$events" "$writers" 500 >/dev/null
    # Intake ends when the spool stops growing (minus the 30 ms idle).
    settle
    t1=$(awk -v t="$(now)" 'BEGIN { printf "%.3f", t - 0.03 }')
    c1=$(cpu_ticks "$dpid")
    stop
    grep "stopping" "$tmp/log" | sed 's/^/  /'
    syncs=$(awk '/fdatasync/ { print $4 }' "$tmp/strace.$writers")
    awk -v e="$events" -v w="$writers" -v t0="$t0" -v t1="$t1" \
        -v s="${syncs:-0}" -v c="$((c1 - c0))" -v hz="$hz" 'BEGIN {
            d = t1 - t0
            printf "%8d %12.0f %8.1f %12.0f %14.2f\n", w, e / d,
                e * 500 / d / 1e6, s / d, c / hz / (e / 1e6)
        }'
done

# Recovery: about 1 GiB of segments, then a SIGKILL and a timed restart.
rm -rf "$tmp/spool" "$tmp/state"
config
start
big=1600000
"$loadgen" "$tmp/sock" "$big" 16 500 >/dev/null
settle
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
pid=
size=$(du -sb "$tmp/spool" | cut -f1)
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(now)
start
t1=$(now)
awk -v s="$size" -v t0="$t0" -v t1="$t1" 'BEGIN {
    printf "recovery: %.2f GiB spool to ready in %.2f s\n", s / 2^30, t1 - t0
}'
grep "holds events" "$tmp/log" | sed 's/^/  /'
stop

if [ "${OUTAGE:-0}" = 1 ]; then
    AAAS_BUILDS=$build AAAS_OUTAGE_EVENTS=1000000 /usr/bin/python3 -m pytest \
        -q -s "$src/tests/integration/test_spool.py" -k outage
fi
