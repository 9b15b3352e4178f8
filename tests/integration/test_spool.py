# SPDX-License-Identifier: MIT
"""The spool through the daemon: disk faults, a long sink outage, and two
daemons on one spool directory."""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (HERE, Daemon, Setup, assert_exactly_once, delivered,
                      check_meta, daemon_environment, events, wait_for,
                      jline, wait_lines, write_lines)


def event_line(tag, i):
    return json.dumps({"tag": tag, "i": i, "pad": "p" * (i % 40)},
                      separators=(",", ":")).encode()


def send_events(path, lines, connections=4):
    """Writes lines over a few connections and closes them."""
    socks = []
    for _ in range(connections):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(120)
        s.connect(str(path))
        socks.append(s)
    chunk = 500
    for k in range(0, len(lines), chunk):
        part = lines[k:k + chunk]
        socks[(k // chunk) % len(socks)].sendall(
            b"".join(ln + b"\n" for ln in part))
    for s in socks:
        s.close()


def status_has(daemon, text):
    daemon._drain_notify()
    return any(text in n for n in daemon.notices)


def last_status(daemon):
    daemon._drain_notify()
    st = [n for n in daemon.notices if n.startswith("STATUS=")]
    return st[-1] if st else ""


@pytest.fixture(scope="module")
def fault_shim(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler for the fault shim")
    out = tmp_path_factory.mktemp("shim") / "spool_faults.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out),
                    str(HERE / "spool_faults.c"), "-ldl"], check=True)
    return out


FAULTS = {
    "enospc": "No space left on device",
    "eio": "Input/output error",
    "sync-eio": "Input/output error",
    "short": None,
}


@pytest.mark.parametrize("mode", sorted(FAULTS))
def test_disk_faults(make_daemon, setup, receiver, fault_shim, mode):
    """Writes and syncs fail, then heal: logged, in STATUS, nothing lost."""
    control = setup.root / "faults"
    control.write_text("")
    setup.config(receiver.url, socket=True, inputs=[], log_level="info")
    env = daemon_environment(setup.home)
    env["LD_PRELOAD"] = str(fault_shim)
    env["AAAS_FAULTS"] = str(control)
    d = make_daemon(env)
    if d.build.sanitized:
        d.env["ASAN_OPTIONS"] += ":verify_asan_link_order=0"
    d.start()

    before = [event_line("before", i) for i in range(200)]
    during = [event_line(mode, i) for i in range(300)]
    send_events(setup.socket_path, before)
    wait_lines(receiver, 200, d)

    control.write_text(mode)
    send_events(setup.socket_path, during)
    error = FAULTS[mode]
    if error:
        wait_for(lambda: error in d.stderr(), 20,
                 "the spool error in the log", d)
        wait_for(lambda: status_has(d, "spool error: " + error), 20,
                 "the spool error in STATUS", d)
        # Not durable, so not sent: the sink sees nothing new.
        time.sleep(1.0)
        assert receiver.stats()["newlines_stored"] == 200
        assert d.alive()
    control.write_text("")

    wait_lines(receiver, 500, d, 60)
    if error:
        wait_for(lambda: "is writable again" in d.stderr(), 20,
                 "the spool to report it recovered", d)
        wait_for(lambda: "spool error" not in last_status(d), 20,
                 "STATUS without the spool error", d)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    assert_exactly_once(got, before + during)


OUTAGE_EVENTS = int(os.environ.get("AAAS_OUTAGE_EVENTS", "50000"))


def test_outage_then_drain(make_daemon, setup, receiver):
    """The sink refuses everything for a while, then comes back."""
    setup.config(receiver.url, socket=True, inputs=[], log_level="info",
                 top_extra="")
    d = make_daemon().start()
    receiver.control(fail_next_calls=10 ** 9, status=503,
                     type="ServiceUnavailableException",
                     message="Injected outage.")
    backlog = [event_line("backlog", i) for i in range(OUTAGE_EVENTS)]
    t0 = time.monotonic()
    send_events(setup.socket_path, backlog, connections=8)
    wait_for(lambda: status_has(d, "STATUS=accepted %d," % OUTAGE_EVENTS),
             max(60, OUTAGE_EVENTS / 2000), "every event accepted", d,
             interval=0.5)
    accepted_s = time.monotonic() - t0
    assert receiver.stats()["newlines_stored"] == 0

    receiver.control(fail_next_calls=0)
    fresh = [event_line("fresh", i) for i in range(5000)]
    send_events(setup.socket_path, fresh)
    wait_lines(receiver, OUTAGE_EVENTS + len(fresh), d,
               max(120, OUTAGE_EVENTS / 2000))
    drained_s = time.monotonic() - t0 - accepted_s
    d.stop()
    print("outage: %d events accepted in %.1f s, drained in %.1f s"
          % (OUTAGE_EVENTS, accepted_s, drained_s))

    got = delivered(receiver.out_dir)
    check_meta(got)
    evs = events(got)
    assert_exactly_once(got, backlog + fresh)
    # Oldest first: every object holds ascending numbers, and the first
    # object stored starts near the front of the backlog.
    by_object = {}
    for ln in evs:
        by_object.setdefault(ln.object, []).append(ln.meta["seq"])
    for seqs in by_object.values():
        assert seqs == sorted(seqs)
    first = min(by_object, key=lambda p: p.stat().st_mtime_ns)
    lowest = min(ln.meta["seq"] for ln in evs)
    assert min(by_object[first]) - lowest < len(evs) // 10


def test_second_daemon_refused(make_daemon, build, setup, receiver,
                               tmp_path, short_dir):
    """Two daemons can never share a spool: the second one says why."""
    setup.config(receiver.url, socket=True, inputs=[], log_level="info")
    first = make_daemon().start()

    other = Setup(tmp_path / "other", short_dir / "other")
    (short_dir / "other").mkdir()
    other.spool = setup.spool
    other.config(receiver.url, socket=True, inputs=[], log_level="info")
    second = Daemon(build, other, daemon_environment(other.home))
    second.start(wait_ready=False)
    try:
        rc = second.proc.wait(30)
    finally:
        text = second.stderr()
        second.cleanup()
    assert rc != 0
    assert ("spool: '%s' is in use by another aaasd, exiting"
            % setup.spool) in text
    assert first.alive()
    send_events(setup.socket_path, [event_line("first", 0)], connections=1)
    wait_lines(receiver, 1, first)
    first.stop()


def test_small_spool_keeps_flowing(make_daemon, setup, receiver):
    """Acknowledged segments are deleted even when the sink goes quiet.

    The checkpoint that lets the spool delete them is written at most every
    200 ms; the last answer of a burst used to leave it unwritten, so a
    spool of a few segments filled with delivered events and stopped
    taking input for good.
    """
    path = setup.config(receiver.url, socket=False, inputs=[
        ("app", {"path": setup.logs / "*.log"})])
    text = path.read_text()
    spool = "spool { dir = %s }" % json.dumps(str(setup.spool))
    assert spool in text
    path.write_text(text.replace(spool, spool[:-1] +
                                 ' max_size = "1M" segment_size = "256k" }'))
    lines = [jline(small=i, pad="s" * 180) for i in range(20000)]
    d = make_daemon().start()
    write_lines(setup.logs / "big.log", lines)
    wait_lines(receiver, len(lines), d, 120)
    d.stop()
    assert_exactly_once(delivered(receiver.out_dir), lines)
