#!/bin/sh
# Delivery figures: daemon CPU-seconds per million events delivered,
# calls per second and billed bytes per million events, with and without
# packing, against the local receiver (no fsync, signatures checked).
#
#   bench/delivery.sh [EVENTS [SIZE]]     defaults: 1000000 400
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
events=${1:-1000000}
size=${2:-400}
py=/usr/bin/python3
work=$(mktemp -d /tmp/aaas-bench-XXXXXX)
trap 'kill $recv 2>/dev/null || true; rm -rf "$work"' EXIT

"$py" "$top/tests/integration/firehose_receiver.py" --port 0 \
    --out "$work/out" --access-key AKIDBENCH --secret-key bench-secret \
    --no-fsync >"$work/receiver.out" 2>"$work/receiver.log" &
recv=$!
for _ in $(seq 100); do
    grep -q '^listening' "$work/receiver.out" 2>/dev/null && break
    sleep 0.1
done
port=$(awk '/^listening/ { print $3 }' "$work/receiver.out")

stored() {
    "$py" -c 'import json,sys,urllib.request as u
print(json.load(u.urlopen(sys.argv[1]))["newlines_stored"])' \
        "http://127.0.0.1:$port/_stats"
}

run() {
    pack=$1
    rm -rf "$work/state" "$work/spool"
    cat >"$work/aaas.conf" <<CONF
state_dir = "$work/state"
agent_id = "bench"
log_level = "notice"
spool { dir = "$work/spool" }
socket { path = "$work/auditd.sock" }
firehose {
    stream = "audit-events"
    region = "us-east-1"
    endpoint = "http://127.0.0.1:$port"
    pack = $pack
    max_in_flight = 8
}
CONF
    before=$(stored)
    env -i PATH="$PATH" HOME="$work" AWS_ACCESS_KEY_ID=AKIDBENCH \
        AWS_SECRET_ACCESS_KEY=bench-secret AWS_EC2_METADATA_DISABLED=true \
        AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent \
        "$top/aaasd" -c "$work/aaas.conf" 2>"$work/aaasd.$pack.log" &
    pid=$!
    while [ ! -S "$work/auditd.sock" ]; do sleep 0.1; done
    t0=$(date +%s.%N)
    "$top/bench/loadgen" "$work/auditd.sock" "$events" 4 "$size" >/dev/null
    want=$((before + events))
    while [ "$(stored)" -lt "$want" ]; do sleep 0.2; done
    t1=$(date +%s.%N)
    ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    kill -TERM "$pid"
    wait "$pid" || true
    hz=$(getconf CLK_TCK)
    line=$(grep 'stopping' "$work/aaasd.$pack.log")
    calls=$(echo "$line" | sed -n 's/.* \([0-9]*\) calls,.*/\1/p')
    billed=$(echo "$line" | sed -n 's/.*billed \([0-9]*\) bytes.*/\1/p')
    unpacked=$(echo "$line" | sed -n 's/.*(\([0-9]*\) unpacked).*/\1/p')
    echo "$pack $events $ticks $hz $t0 $t1 $calls $billed $unpacked" | awk '{
        m = $2 / 1e6; wall = $6 - $5
        printf "pack=%-5s events=%d cpu=%.2fs (%.2f s per million) " \
               "wall=%.1fs calls=%d (%.0f/s) billed=%.0f MB per million " \
               "(%.0f MB unpacked)\n", $1, $2, $3 / $4, $3 / $4 / m, wall,
               $7, $7 / wall, $8 / m / 1e6, $9 / m / 1e6 }'
}

run false
run true
