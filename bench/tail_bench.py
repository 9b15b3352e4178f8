#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Lines per second tailed into the spool, and CPU-seconds per million.

    bench/tail_bench.py [--lines N] [--format json|auditd] [BUILD_DIR]

Writes N lines to a file (json: objects of about 500 bytes; auditd: a
SYSCALL, EXECVE, CWD, PATH, PROCTITLE, EOE event per six lines, records of
about 250 bytes), starts aaasd on it with no reachable sink (the endpoint
is a closed loopback port, so nothing is sent and the spool only grows),
and waits until the offsets file says the whole file is durable in the
spool.  The wall time is taken from the first line read to that point;
the offsets file is written at most once a second, so the figure is a
lower bound for short runs; use a million lines or more.  CPU time is the
daemon's own user+system time from /proc.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def json_lines(n):
    pad = "x" * 400
    for i in range(n):
        yield json.dumps({"seq": i, "user": "alice", "action": "read",
                          "object": "/srv/data/%d" % i, "pad": pad},
                         separators=(",", ":")).encode() + b"\n"


def auditd_lines(n):
    i = 0
    serial = 1000
    while i < n:
        stamp = "msg=audit(1700000000.%03d:%d):" % (serial % 1000, serial)
        recs = [
            "type=SYSCALL %s arch=c000003e syscall=59 success=yes exit=0 "
            "a0=55d0c0 a1=55d0d0 a2=55d0e0 a3=0 items=2 ppid=100 pid=%d "
            "auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 "
            "egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm=\"cat\" "
            "exe=\"/usr/bin/cat\" key=\"exec\"" % (stamp, serial),
            "type=EXECVE %s argc=2 a0=\"cat\" a1=2F6574632F686F7374206E616D65"
            % stamp,
            "type=CWD %s cwd=\"/home/alice\"" % stamp,
            "type=PATH %s item=0 name=\"/usr/bin/cat\" inode=1234 dev=08:01 "
            "mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL" % stamp,
            "type=PROCTITLE %s proctitle=636174002F6574632F686F7374206E616D65"
            % stamp,
            "type=EOE %s" % stamp,
        ]
        for r in recs:
            if i >= n:
                break
            yield r.encode() + b"\n"
            i += 1
        serial += 1


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def saved_offset(state):
    try:
        text = (state / "offsets").read_text()
    except OSError:
        return 0
    best = 0
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 6:
            best = max(best, int(parts[5]))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1000000)
    ap.add_argument("--format", choices=("json", "auditd"), default="json")
    ap.add_argument("build", nargs="?",
                    default=str(Path(__file__).resolve().parent.parent))
    a = ap.parse_args()
    aaasd = Path(a.build) / "aaasd"

    root = Path(tempfile.mkdtemp(prefix="aaas-bench-"))
    try:
        logs = root / "logs"
        state = root / "state"
        spool = root / "spool"
        for d in (logs, state, spool):
            d.mkdir()
        log = logs / "bench.log"
        gen = json_lines if a.format == "json" else auditd_lines
        with open(log, "wb") as f:
            for ln in gen(a.lines):
                f.write(ln)
        size = log.stat().st_size
        conf = root / "aaas.conf"
        conf.write_text(
            'state_dir = "%s"\nlog_level = "notice"\n'
            'spool { dir = "%s"\n max_size = "64G" }\n'
            'socket { enabled = false }\n'
            'input "bench" { path = "%s"\n format = "%s" }\n'
            'firehose { stream = "s"\n region = "us-east-1"\n'
            ' endpoint = "http://127.0.0.1:%d"\n retry_initial = 30000\n'
            ' retry_max = 30000 }\n'
            % (state, spool, log, a.format, free_port()))
        env = {"PATH": "/usr/bin:/bin", "HOME": str(root),
               "AWS_ACCESS_KEY_ID": "AKIAAAASBENCH0000001",
               "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_EC2_METADATA_DISABLED": "true",
               "AWS_CONFIG_FILE": str(root / "none"),
               "AWS_SHARED_CREDENTIALS_FILE": str(root / "none")}
        t0 = time.monotonic()
        p = subprocess.Popen([str(aaasd), "-c", str(conf)], env=env,
                             stdout=subprocess.DEVNULL,
                             stderr=open(root / "stderr", "wb"))
        try:
            while saved_offset(state) < size:
                if p.poll() is not None:
                    sys.exit("aaasd exited: %s"
                             % (root / "stderr").read_text()[-2000:])
                time.sleep(0.02)
            wall = time.monotonic() - t0
            cpu = cpu_seconds(p.pid)
        finally:
            p.terminate()
            p.wait(30)
        print("%s: %d lines, %.1f MB, %.2f s wall, %.0f lines/s, "
              "%.2f CPU-s (%.2f CPU-s per million lines)"
              % (a.format, a.lines, size / 1e6, wall, a.lines / wall, cpu,
                 cpu * 1e6 / a.lines))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
