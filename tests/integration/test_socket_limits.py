# SPDX-License-Identifier: MIT
"""Limits on the event socket: hostile, slow and silent writers."""

import json
import os
import socket
import time

from conftest import check_meta, delivered, events, jline, rejects, \
    wait_for, wait_lines


def connect(path, timeout=30):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(path))
    return s


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (field, pid))


def send_events(path, lines):
    s = connect(path)
    s.sendall(b"".join(ln + b"\n" for ln in lines))
    s.close()


def test_endless_line_is_cut_and_memory_stays_flat(make_daemon, setup,
                                                   receiver):
    setup.config(receiver.url, inputs=[], log_level="info",
                 socket_extra='max_event_size = "64k"')
    d = make_daemon().start()
    s = connect(setup.socket_path)
    chunk = b"A" * (1 << 20)
    # 200 MiB of one line: far more than the daemon may hold.
    for _ in range(200):
        s.sendall(chunk)
    assert vm_kib(d.proc.pid, "VmHWM") < 64 * 1024
    after = jline(after="endless")
    s.sendall(b"\n" + after + b"\n")
    s.close()
    wait_lines(receiver, 2, d)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    rej = rejects(got)
    assert len(rej) == 1
    assert "longer than 65536 bytes" in rej[0].reject["reason"]
    assert rej[0].reject_raw() == b"A" * 65536
    assert [ln.original for ln in events(got)] == [after]


def test_mid_line_disconnect_counts_a_partial_line(make_daemon, setup,
                                                   receiver):
    setup.config(receiver.url, inputs=[])
    d = make_daemon().start()
    s = connect(setup.socket_path)
    whole = jline(whole=1)
    s.sendall(whole + b'\n{"cut":')
    s.close()
    wait_lines(receiver, 1, d)
    wait_for(lambda: "hung up in the middle of a line, dropping 7 bytes"
             in d.stderr(), 10, "the partial line in the log", d)
    d.stop()
    got = delivered(receiver.out_dir)
    assert [ln.original for ln in got] == [whole]


def test_silent_and_slow_writers_are_closed(make_daemon, setup, receiver):
    setup.config(receiver.url, inputs=[], socket_extra="idle_timeout = 1000")
    d = make_daemon().start()
    silent = connect(setup.socket_path)
    slow = connect(setup.socket_path)
    # Others are served while the silent one holds its connection.
    lines = [jline(busy=i) for i in range(100)]
    send_events(setup.socket_path, lines)
    wait_lines(receiver, 100, d)

    deadline = time.monotonic() + 20
    closed = False
    while time.monotonic() < deadline:
        try:
            slow.send(b"x")      # a byte at a time, never a line
        except OSError:
            closed = True
            break
        time.sleep(0.1)
    assert closed, "the slow writer was never closed"
    assert silent.recv(10) == b""
    silent.close()
    slow.close()
    text = d.stderr()
    assert text.count("sent no complete line for 1000 ms") == 2, text
    assert "hung up in the middle of a line" not in text or \
        "dropping" in text
    d.stop()
    got = delivered(receiver.out_dir)
    assert sorted(ln.original for ln in got) == sorted(lines)


def test_connections_over_the_limit_are_refused(make_daemon, setup,
                                                receiver):
    setup.config(receiver.url, inputs=[], socket_extra="max_connections = 4")
    d = make_daemon().start()
    held = [connect(setup.socket_path) for _ in range(4)]
    # The listen backlog takes the fifth; the daemon then closes it.
    extra = connect(setup.socket_path)
    assert extra.recv(10) == b""
    extra.close()
    assert "4 connections open" in d.stderr()
    for i, s in enumerate(held):
        s.sendall(jline(held=i) + b"\n")
        s.close()
    wait_lines(receiver, 4, d)
    d.stop()


def test_writers_holding_partial_lines_cannot_grow_memory(make_daemon,
                                                          setup, receiver):
    setup.config(receiver.url, inputs=[], log_level="info",
                 socket_extra='max_buffer = "1M"  idle_timeout = 0')
    d = make_daemon().start()
    base = vm_kib(d.proc.pid, "VmRSS")
    hostile = []
    for i in range(40):
        s = connect(setup.socket_path)
        s.setblocking(False)
        # 900 KiB of a line that never ends, per connection.
        data = b'{"h":"' + b"h" * (900 * 1024)
        try:
            while data:
                n = s.send(data)
                data = data[n:]
        except BlockingIOError:
            pass
        hostile.append(s)
    time.sleep(1.0)
    # An honest writer still gets through.
    lines = [jline(honest=i) for i in range(200)]
    send_events(setup.socket_path, lines)
    wait_lines(receiver, 200, d)
    grown = vm_kib(d.proc.pid, "VmRSS") - base
    # 40 x 900 KiB would be 35 MiB; the cap keeps it near 1 MiB plus
    # one read per connection.
    assert grown < 12 * 1024, grown
    for s in hostile:
        s.close()
    wait_for(lambda: d.stderr().count("hung up in the middle of a line")
             == 40, 20, "40 partial lines", d)
    d.stop()
    got = delivered(receiver.out_dir)
    assert sorted(ln.original for ln in got) == sorted(lines)
