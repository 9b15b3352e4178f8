# SPDX-License-Identifier: MIT
"""A spool that fills up: on_full = drop_oldest gives up the oldest unsent
events and declares them in a gap line, on_full = block loses nothing, and
a real full file system (a small tmpfs) holds the inputs back until there
is room again."""

import json
import os
import re
import subprocess
import threading
import time

import pytest

from conftest import (assert_exactly_once, check_meta, delivered, wait_for,
                      wait_lines)
from test_spool import event_line, last_status, send_events, status_has

AGENT = "d" * 32
EVENTS = 12000


def keygen(build, path):
    out = subprocess.run([str(build.path / "aaasctl"), "keygen", "-f",
                          str(path)], capture_output=True, check=True)
    pub = path.with_suffix(".pub")
    pub.write_bytes(out.stdout)
    return pub


def verify(build, out_dir, pub):
    p = subprocess.run([str(build.path / "aaasctl"), "verify", "--json",
                        "--key", str(pub), str(out_dir)],
                       capture_output=True, timeout=120)
    return p.returncode, json.loads(p.stdout), p.stderr.decode()


def small_spool(setup, receiver, on_full, key, inputs=()):
    setup.config(receiver.url, socket=True, inputs=list(inputs),
                 log_level=os.environ.get("AAAS_LOG", "info"),
                 firehose_extra="max_in_flight = 1",
                 top_extra='agent_id = "%s"\nsigning { key = "%s" '
                           'seal_every = 200 seal_interval = 200 }'
                           % (AGENT, key))
    text = setup.config_path.read_text().replace(
        "spool { dir = ",
        'spool { max_size = "1M" segment_size = "64K" on_full = "%s" dir = '
        % on_full)
    setup.config_path.write_text(text)


def gaps_of(lines):
    """(first, last, count) of every delivered _aaas_gap line."""
    out = []
    for ln in lines:
        if ln.original.startswith(b'{"_aaas_gap":'):
            g = json.loads(ln.original)["_aaas_gap"]
            assert g["reason"] == "spool full"
            # A drop that takes earlier gap lines declares their ranges
            # too, so the range may hold delivered numbers.
            assert 0 < g["count"] <= g["last_seq"] - g["first_seq"] + 1
            assert ln.meta["seq"] > g["last_seq"]
            assert ln.meta["source"] == "daemon"
            out.append((g["first_seq"], g["last_seq"], g["count"]))
    return sorted(set(out))


def outage(receiver):
    receiver.control(fail_next_calls=10 ** 9, status=503,
                     type="ServiceUnavailableException",
                     message="Injected outage.")


def overfill(setup, lines):
    """Writes lines from a thread; returns it and the error box."""
    box = []

    def run():
        try:
            send_events(setup.socket_path, lines, connections=2)
        except OSError as e:
            box.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def test_drop_oldest_declares_the_gap(build, make_daemon, setup, receiver,
                                      tmp_path):
    """Over the cap with the sink down: old events go, declared, verified."""
    key = tmp_path / "signing.key"
    pub = keygen(build, key)
    small_spool(setup, receiver, "drop_oldest", key)
    d = make_daemon().start()
    outage(receiver)

    sent = [event_line("drop", i) for i in range(EVENTS)]
    t, box = overfill(setup, sent)
    # The daemon keeps taking events although the spool is full.
    t.join(90)
    assert not t.is_alive() and not box, \
        "the writer was held back: %r\n%s\n%s\n%s" % (
            box, d.tail(), last_status(d), sorted(os.listdir(setup.spool)))
    wait_for(lambda: status_has(d, "STATUS=accepted") and
             "dropped for a full spool" in last_status(d), 30,
             "the drop in STATUS", d)
    log = d.stderr()
    assert re.search(r"warning: spool: '.*' is full, dropped the unsent events "
                     r"\d+ to \d+", log), log[-3000:]
    assert receiver.stats()["newlines_stored"] == 0

    receiver.control(fail_next_calls=0)
    wait_for(lambda: status_has(d, "backlog 0,") and
             "backlog 0," in last_status(d), 120, "the backlog to drain", d,
             interval=0.5)
    d.stop(timeout=60)

    got = delivered(receiver.out_dir)
    gaps = gaps_of(got)
    assert gaps, "no gap line was delivered"
    evs = [ln for ln in got
           if not ln.seal and not ln.original.startswith(b'{"_aaas_gap":')]
    check_meta(evs)
    in_gap = lambda seq: any(a <= seq <= b for a, b, _ in gaps)
    # Every number is delivered or inside a declared gap.
    seen = {ln.meta["seq"] for ln in got}
    top = max(seen)
    lost = [s for s in range(1, top + 1) if s not in seen]
    assert lost, "nothing was dropped"
    assert not [s for s in lost if not in_gap(s)], \
        "numbers neither delivered nor declared: %s" % \
        [s for s in lost if not in_gap(s)][:20]
    assert len(lost) <= sum(c for _, _, c in gaps)
    # Each event written is delivered once or was dropped, and the newest
    # ones (written after the last drop) all arrived.
    originals = [ln.original for ln in evs]
    assert len(set(originals)) == len(originals)
    assert set(originals) <= set(sent)
    assert len(originals) + len(lost) >= EVENTS
    assert sent[-1] in set(originals)

    rc, report, err = verify(build, receiver.out_dir, pub)
    a = report["agents"][0]
    print("drop_oldest: %d events, %d numbers dropped in %d gap lines; "
          "verify: gaps %s, after_gap %s, sealed_in_gap %s"
          % (EVENTS, len(lost), len(gaps), a["declared_gaps"],
             a["after_gap"], a["sealed_in_gap"]))
    assert a["agent"] == AGENT
    declared = [(g["first"], g["last"]) for g in a["declared_gaps"]]
    assert declared == [(f, l) for f, l, _ in gaps]
    assert a["missing"] == [] and a["altered"] == [], a
    assert a["inserted"] == [] and a["conflicts"] == [], a
    assert a["bad_seals"] == [] and a["chain_restarts"] == [], a
    assert a["unsealed"] == [] and a["unsealed_tail"] is None, a
    assert a["declared_loss"] is True and a["verified"], a
    # Documented: 3 when nothing is wrong but the agent declared a loss.
    assert rc == 3 and report["ok"] is False, (rc, report, err)


def test_block_loses_nothing(build, make_daemon, setup, receiver, tmp_path):
    """The same run with on_full = block: the writer waits, nothing goes."""
    key = tmp_path / "signing.key"
    pub = keygen(build, key)
    small_spool(setup, receiver, "block", key)
    d = make_daemon().start()
    outage(receiver)

    sent = [event_line("block", i) for i in range(EVENTS)]
    t, box = overfill(setup, sent)
    wait_for(lambda: "reached its size limit, pausing inputs" in d.stderr(),
             60, "the spool to fill", d)
    time.sleep(1.0)
    assert t.is_alive(), "the writer was not held back"
    receiver.control(fail_next_calls=0)
    t.join(120)
    assert not t.is_alive() and not box, box
    wait_lines(receiver, EVENTS, d, 120)
    d.stop(timeout=60)

    got = delivered(receiver.out_dir)
    assert not gaps_of(got)
    assert "dropped" not in d.all_stderr()
    assert_exactly_once(got, sent)
    rc, report, err = verify(build, receiver.out_dir, pub)
    assert rc == 0 and report["ok"] is True, (report, err)
    assert report["agents"][0]["declared_gaps"] == []


@pytest.fixture
def tmpfs(tmp_path):
    where = tmp_path / "small"
    where.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs",
                        str(where)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % p.stderr.strip())
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_real_full_disk(make_daemon, setup, receiver, tmpfs):
    """A spool on a full file system: ENOSPC reported, then it heals."""
    setup.spool = tmpfs / "spool"
    setup.config(receiver.url, socket=True, inputs=[], log_level="info")
    # Segments far smaller than the file system, so that acknowledged
    # ones make room (the one being written is never deleted).
    text = setup.config_path.read_text().replace(
        "spool { dir = ", 'spool { segment_size = "512K" dir = ')
    setup.config_path.write_text(text)
    d = make_daemon().start()

    before = [event_line("before", i) for i in range(500)]
    send_events(setup.socket_path, before)
    wait_lines(receiver, len(before), d)

    # Fill the file system to the last byte.
    filler = tmpfs / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    # More than the write buffer and the socket buffers hold.
    during = [event_line("during", i) for i in range(40000)]
    t, box = overfill(setup, during)
    wait_for(lambda: "No space left on device" in d.stderr(), 30,
             "ENOSPC in the log", d)
    wait_for(lambda: status_has(d, "spool error: No space left on device"),
             30, "ENOSPC in STATUS", d)
    stored = receiver.stats()["newlines_stored"]
    time.sleep(1.0)
    # Pushed back: the writer waits, nothing new is durable or sent.
    assert t.is_alive(), "the writer was not held back"
    assert receiver.stats()["newlines_stored"] == stored
    assert d.alive()

    filler.unlink()
    t.join(120)
    assert not t.is_alive() and not box, "not resumed: %r\n%s\n%s" % (
        box, d.tail(), last_status(d))
    wait_lines(receiver, len(before) + len(during), d, 120)
    wait_for(lambda: "is writable again" in d.stderr(), 30,
             "the spool to report it recovered", d)
    wait_for(lambda: "spool error" not in last_status(d), 30,
             "STATUS without the spool error", d)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    assert_exactly_once(got, before + during)


def test_drop_oldest_file_input_and_restart(build, make_daemon, setup,
                                            receiver, tmp_path):
    """Dropped lines of a file are not read again, across a restart, and
    the gaps declared before the restart stay declared."""
    key = tmp_path / "signing.key"
    pub = keygen(build, key)
    small_spool(setup, receiver, "drop_oldest", key,
                inputs=[("app", {"path": setup.logs / "*.log"})])
    text = setup.config_path.read_text().replace(
        "socket { path", "socket { enabled = false path")
    setup.config_path.write_text(text)
    d = make_daemon().start()
    outage(receiver)

    log = setup.logs / "app.log"
    first = [event_line("file1", i) for i in range(6000)]
    with open(log, "wb") as f:
        f.write(b"".join(ln + b"\n" for ln in first))
    wait_for(lambda: "dropped for a full spool" in last_status(d) and
             status_has(d, "STATUS=accepted"), 60, "a drop", d)
    # Let the offsets file catch up with what was read, then restart.
    time.sleep(2.0)
    d.stop(timeout=30)
    d.start()
    second = [event_line("file2", i) for i in range(6000)]
    with open(log, "ab") as f:
        f.write(b"".join(ln + b"\n" for ln in second))
    wait_for(lambda: "dropped for a full spool" in last_status(d), 60,
             "a drop after the restart", d)
    receiver.control(fail_next_calls=0)
    wait_for(lambda: "backlog 0," in last_status(d), 120,
             "the backlog to drain", d, interval=0.5)
    # Nothing more comes: no line is read again.
    time.sleep(2.0)
    d.stop(timeout=60)

    got = delivered(receiver.out_dir)
    gaps = gaps_of(got)
    evs = [ln for ln in got
           if not ln.seal and not ln.original.startswith(b'{"_aaas_gap":')]
    originals = [ln.original for ln in evs]
    assert len(set(originals)) == len(originals), "a line arrived twice"
    assert set(originals) <= set(first + second)
    assert second[-1] in set(originals)
    in_gap = lambda seq: any(a <= seq <= b for a, b, _ in gaps)
    seen = {ln.meta["seq"] for ln in got}
    lost = [s for s in range(1, max(seen) + 1) if s not in seen]
    assert lost and not [s for s in lost if not in_gap(s)]
    # Each line is delivered or among the numbers given up.
    assert len(originals) + len(lost) >= len(first) + len(second)
    rc, report, err = verify(build, receiver.out_dir, pub)
    a = report["agents"][0]
    assert a["missing"] == [] and a["altered"] == [], a
    assert a["bad_seals"] == [] and a["unsealed"] == [], a
    assert rc == 3, (rc, report, err)
