# SPDX-License-Identifier: MIT
"""A thousand writers at once, each in its own connection."""

import collections
import json
import resource
import socket

import pytest

from conftest import check_meta, delivered, events, jline, wait_lines

WRITERS = 1000
PER_WRITER = 20


def test_thousand_concurrent_writers(make_daemon, setup, receiver):
    setup.config(receiver.url, inputs=[], log_level="info",
                 socket_extra="max_connections = 1100")
    # Started with a soft limit below max_connections (systemd's default
    # of 1024 is just that with the default config), the daemon must
    # raise its own to serve every writer.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < WRITERS + 300:
        pytest.skip("the hard file limit %d is too low" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
    try:
        d = make_daemon().start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    conns = []
    try:
        # All are connected before any writes, so all are open at once.
        for _ in range(WRITERS):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(60)
            s.connect(str(setup.socket_path))
            conns.append(s)
        for i in range(PER_WRITER):
            for w, s in enumerate(conns):
                s.sendall(jline(w=w, i=i) + b"\n")
    finally:
        for s in conns:
            s.close()
    wait_lines(receiver, WRITERS * PER_WRITER, d, 180)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    evs = events(got)
    assert len(evs) == len(got) == WRITERS * PER_WRITER
    seen = collections.Counter()
    order = collections.defaultdict(list)
    for ln in sorted(evs, key=lambda ln: ln.meta["seq"]):
        o = json.loads(ln.original)
        seen[(o["w"], o["i"])] += 1
        order[o["w"]].append(o["i"])
    assert len(seen) == WRITERS * PER_WRITER and max(seen.values()) == 1
    for w, got_order in order.items():
        assert got_order == list(range(PER_WRITER)), w
    assert "refusing" not in d.all_stderr()
