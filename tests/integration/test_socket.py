# SPDX-License-Identifier: MIT
"""Many concurrent socket writers: every event once, with its writer's creds."""

import collections
import json
import os
import subprocess
import sys

from conftest import check_meta, delivered, events, wait_lines

WRITERS = 20
PER_WRITER = 500

# Each writer is its own process so that the peer pid tells them apart.
WRITER = r"""
import json, socket, sys
path, w, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(60)
s.connect(path)
sys.stdout.write("connected\n")
sys.stdout.flush()
sys.stdin.readline()
buf = []
for i in range(n):
    buf.append(json.dumps({"writer": w, "i": i, "pad": "z" * (i % 50)},
                          separators=(",", ":")).encode() + b"\n")
    if len(buf) == 25:
        s.sendall(b"".join(buf))
        buf = []
s.sendall(b"".join(buf))
s.close()
"""


def expected_line(w, i):
    return json.dumps({"writer": w, "i": i, "pad": "z" * (i % 50)},
                      separators=(",", ":")).encode()


def test_concurrent_writers(make_daemon, setup, receiver):
    setup.config(receiver.url, socket=True, inputs=[], log_level="info")
    d = make_daemon().start()
    procs = []
    try:
        for w in range(WRITERS):
            procs.append(subprocess.Popen(
                [sys.executable, "-c", WRITER, str(setup.socket_path),
                 str(w), str(PER_WRITER)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        # All twenty are connected before any writes: truly concurrent.
        for p in procs:
            assert p.stdout.readline() == b"connected\n"
        for p in procs:
            p.stdin.write(b"go\n")
            p.stdin.flush()
        for p in procs:
            assert p.wait(60) == 0
        wait_lines(receiver, WRITERS * PER_WRITER, d, 120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdin.close()
            p.stdout.close()
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    evs = events(got)
    assert len(evs) == len(got) == WRITERS * PER_WRITER
    pids = {w: p.pid for w, p in enumerate(procs)}
    seen = collections.Counter()
    for ln in evs:
        obj = json.loads(ln.original)
        w, i = obj["writer"], obj["i"]
        assert ln.original == expected_line(w, i)
        assert ln.meta["source"] == "socket"
        peer = ln.meta["peer"]
        assert {k: peer[k] for k in ("pid", "uid", "gid")} == {
            "pid": pids[w], "uid": os.getuid(), "gid": os.getgid()}, peer
        # A writer that exits before the daemon looks it up keeps only
        # the kernel's pid/uid/gid (aaasd(8) CAVEATS); names, when given,
        # must be its own.
        if "exe" in peer:
            assert peer["exe"] == os.path.realpath(sys.executable), peer
        if "comm" in peer:
            assert peer["comm"] == os.path.basename(sys.executable)[:15], peer
        seen[(w, i)] += 1
    assert set(seen) == {(w, i) for w in range(WRITERS)
                         for i in range(PER_WRITER)}
    assert max(seen.values()) == 1
    # Per connection, the daemon keeps the writer's order.
    by_writer = collections.defaultdict(list)
    for ln in sorted(evs, key=lambda ln: ln.meta["seq"]):
        by_writer[json.loads(ln.original)["writer"]].append(
            json.loads(ln.original)["i"])
    for w, order in by_writer.items():
        assert order == list(range(PER_WRITER)), w
