# SPDX-License-Identifier: MIT
"""File inputs end to end: auditd and raw formats, rotation by logrotate
itself in both modes while a writer appends, rotation while the daemon is
stopped, and a thousand files under one glob."""

import collections
import csv
import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from conftest import (SHARED_DIR, assert_exactly_once, check_meta, delivered,
                      events, jline, rejects, wait_lines,
                      write_lines)

CORPUS = SHARED_DIR / "corpus"
STAMP_RE = re.compile(rb"msg=audit\(([0-9]+\.[0-9]+:[0-9]+)\)")
LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"


def auditd_rows():
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with open(manifest, newline="") as f:
        return [r for r in csv.DictReader(f, delimiter="\t")
                if r["file"].startswith("auditd/")]


def test_auditd_corpus_converted(make_daemon, setup, receiver):
    """Every auditd file of the corpus: one event per distinct stamp."""
    rows = auditd_rows()
    if not rows:
        pytest.skip("no corpus at %s" % CORPUS)
    setup.config(receiver.url, socket=False, log_level="info", inputs=[
        ("audit", {"path": setup.logs / "*.log", "format": "auditd",
                   "partial_timeout": 300, "group_timeout": 300})])
    want_events, want_rejects = {}, {}
    for row in rows:
        dest = setup.logs / (row["file"].replace("/", "__") + ".log")
        shutil.copyfile(CORPUS / row["file"], dest)
        lines = dest.read_bytes().split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        want_events[str(dest)] = int(row["auditd_events"])
        # A line without a stamp is no record: delivered as a reject.
        want_rejects[str(dest)] = sorted(ln for ln in lines
                                         if not STAMP_RE.search(ln))
    total = sum(want_events.values())
    d = make_daemon().start()
    wait_lines(receiver, total, d, 180)
    time.sleep(1.0)
    d.stop()

    got = delivered(receiver.out_dir)
    check_meta(got)
    per_path = collections.Counter()
    stamps = collections.defaultdict(set)
    for ln in events(got):
        obj = json.loads(ln.original)
        assert set(obj) >= {"time", "serial", "records"}, obj
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                        obj["time"]), obj["time"]
        path = ln.meta["path"]
        per_path[path] += 1
        stamps[path].add((obj.get("node"), obj["time"], obj["serial"]))
    rejected = collections.defaultdict(list)
    for ln in rejects(got):
        rejected[ln.meta["path"]].append(ln.reject_raw())
        assert ln.reject["reason"].startswith("auditd: "), ln.reject
    for path, n in want_events.items():
        stamped = [r for r in rejected[path] if STAMP_RE.search(r)]
        # plaso's selinux.log carries stamped records without a type on
        # purpose; those are rejects, everything else is an event.
        assert per_path[path] + len(stamped) == n, (path, per_path[path],
                                                    len(stamped), n)
        assert len(stamps[path]) == per_path[path], path
        unstamped = sorted(r for r in rejected[path]
                           if not STAMP_RE.search(r))
        assert unstamped == want_rejects[path], path

    # Spot checks of decoded values.
    by_serial = {}
    for ln in events(got):
        obj = json.loads(ln.original)
        by_serial[(os.path.basename(ln.meta["path"]), obj["serial"])] = obj
    ev = by_serial[("auditd__go-libaudit__auparse__test3.log.log", 194435)]
    assert ev["time"] == "2016-01-03T00:37:51.394Z"
    assert [r["type"] for r in ev["records"]] == ["SYSCALL", "PROCTITLE"]
    assert ev["records"][1]["proctitle"] == "sshd: burn [priv]"
    ev = by_serial[("auditd__go-libaudit__aucoalesce-2017__execve.log.log",
                    59)]
    execve = [r for r in ev["records"] if r["type"] == "EXECVE"][0]
    assert (execve["a0"], execve["a1"], execve["a2"]) == \
        ("grep", "--color=auto", "mapping")
    paths = [r["name"] for r in ev["records"] if r["type"] == "PATH"]
    assert paths == ["/usr/bin/grep", "/lib64/ld-linux-x86-64.so.2"]
    enriched = [o for (f, _), o in by_serial.items()
                if f == "auditd__plaso__audit_enriched.log.log"]
    assert enriched and all("UID" in o["records"][0] for o in enriched)


def test_raw_format(make_daemon, setup, receiver):
    setup.config(receiver.url, socket=False, inputs=[
        ("plain", {"path": setup.logs / "*.log", "format": "raw"})])
    p = setup.logs / "auth.log"
    good = [b"Jan  1 00:00:01 host sshd[1]: Accepted \"key\" for root",
            b"tab\there \\ back", "caf\u00e9".encode()]
    bad = [b"nul\x00byte", b"bad \xff utf8"]
    write_lines(p, good + bad)
    d = make_daemon().start()
    wait_lines(receiver, len(good) + len(bad), d)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    msgs = sorted(json.loads(ln.original)["message"].encode()
                  for ln in events(got))
    assert msgs == sorted(good)
    assert sorted(ln.reject_raw() for ln in rejects(got)) == sorted(bad)
    for ln in rejects(got):
        assert "NUL byte or is not valid UTF-8" in ln.reject["reason"]


class Writer(threading.Thread):
    """Appends numbered JSON lines at a steady rate, reopening the path
    once it points at another file (as an application does on SIGHUP,
    a little later than the rotation)."""

    def __init__(self, path, rate, seconds, reopen_delay=0.2):
        super().__init__(daemon=True)
        self.path = path
        self.rate = rate
        self.seconds = seconds
        self.reopen_delay = reopen_delay
        self.written = []       # (monotonic time, line)
        self.error = None

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.error = e

    def _run(self):
        f = open(self.path, "ab")
        ino = os.fstat(f.fileno()).st_ino
        moved_at = None
        n = int(self.rate * self.seconds)
        start = time.monotonic()
        for i in range(n):
            line = jline(seq=i, pad="x" * 40)
            f.write(line + b"\n")
            f.flush()
            self.written.append((time.monotonic(), line))
            try:
                now_ino = os.stat(self.path).st_ino
            except FileNotFoundError:
                now_ino = None
            if now_ino != ino and moved_at is None:
                moved_at = time.monotonic()
            if moved_at is not None and \
                    time.monotonic() - moved_at >= self.reopen_delay:
                f.close()
                f = open(self.path, "ab")
                ino = os.fstat(f.fileno()).st_ino
                moved_at = None
            delay = start + (i + 1) / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        f.close()


def run_logrotate(setup, log, mode):
    conf = setup.root / "logrotate.conf"
    conf.write_text("%s {\n    rotate 10\n    missingok\n    %s\n}\n"
                    % (log, mode))
    t0 = time.monotonic()
    subprocess.run([LOGROTATE, "-f", "-s", str(setup.root / "lr.state"),
                    str(conf)], check=True, capture_output=True)
    return t0, time.monotonic()


@pytest.mark.parametrize("mode", ["create", "copytruncate"])
def test_logrotate_while_writing(make_daemon, setup, receiver, mode):
    if not os.access(LOGROTATE, os.X_OK):
        pytest.fail("logrotate is not installed (scripts/deps installs it)")
    log = setup.logs / "app.log"
    log.write_bytes(b"")
    setup.config(receiver.url, socket=False, inputs=[
        ("app", {"path": log, "rotate_wait": 1500})])
    d = make_daemon().start()
    w = Writer(log, rate=200, seconds=5)
    w.start()
    windows = []
    for _ in range(3):
        time.sleep(1.2)
        windows.append(run_logrotate(setup, log, mode))
    w.join()
    assert w.error is None, w.error
    written = [ln for _, ln in w.written]
    if mode == "create":
        wait_lines(receiver, len(written), d, 60)
    else:
        time.sleep(3)
    time.sleep(2.0)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    assert not rejects(got)
    originals = collections.Counter(ln.original for ln in events(got))
    assert max(originals.values()) == 1, "a line arrived twice"
    if mode == "create":
        assert_exactly_once(got, written)
        return
    # copytruncate: only lines written while logrotate ran (between its
    # copy and its truncate) may be missing.
    lost = [(t, ln) for t, ln in w.written if ln not in originals]
    for t, ln in lost:
        assert any(a - 0.05 <= t <= b + 0.05 for a, b in windows), (
            "line %r written outside every logrotate run was lost" % ln)
    assert len(lost) < len(written) / 10


def test_rotated_while_stopped(make_daemon, setup, receiver):
    log = setup.logs / "app.log"
    setup.config(receiver.url, socket=False, inputs=[
        ("app", {"path": log, "rotate_wait": 200})])
    first = [jline(n=i) for i in range(50)]
    write_lines(log, first)
    d = make_daemon().start()
    wait_lines(receiver, 50, d)
    d.stop()
    # While stopped: more lines, rotation, a new file.
    more = [jline(n=i) for i in range(50, 80)]
    write_lines(log, more, mode="ab")
    os.rename(log, setup.logs / "app.log.1")
    new = [jline(n=i) for i in range(80, 100)]
    write_lines(log, new)
    d.start()
    wait_lines(receiver, 100, d)
    time.sleep(0.5)
    d.stop()
    got = delivered(receiver.out_dir)
    assert_exactly_once(got, first + more + new)
    # The rotated file's lines come before the new file's.
    order = [json.loads(ln.original)["n"] for ln in
             sorted(events(got), key=lambda ln: ln.meta["seq"])]
    assert order[50:] == list(range(50, 100))


def test_thousand_files(make_daemon, setup, receiver):
    setup.config(receiver.url, socket=False, log_level="info", inputs=[
        ("many", {"path": setup.logs / "*.log"})])
    for i in range(500):
        write_lines(setup.logs / ("f%04d.log" % i), [jline(f=i, n=0)])
    d = make_daemon().start()
    wait_lines(receiver, 500, d, 120)
    # Files that appear while running are picked up too.
    for i in range(500, 1000):
        write_lines(setup.logs / ("f%04d.log" % i), [jline(f=i, n=0)])
    for i in range(0, 1000, 7):
        write_lines(setup.logs / ("f%04d.log" % i), [jline(f=i, n=1)],
                    mode="ab")
    expected = [jline(f=i, n=0) for i in range(1000)] + \
        [jline(f=i, n=1) for i in range(0, 1000, 7)]
    wait_lines(receiver, len(expected), d, 180)
    d.stop()
    got = delivered(receiver.out_dir)
    assert_exactly_once(got, expected)
