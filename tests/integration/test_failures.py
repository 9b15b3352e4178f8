# SPDX-License-Identifier: MIT
"""Refused records and calls are retried until all arrive exactly once."""

import socket
import time

from conftest import (ACCESS_KEY, REGION, SECRET_KEY, STREAM, FirehoseReceiver,
                      assert_exactly_once, check_meta, delivered, duplicates,
                      jline, wait_for, wait_lines, write_lines)


def file_events(n, tag):
    return [jline(test=tag, n=i, pad="p" * (i % 37)) for i in range(n)]


def run_until_delivered(make_daemon, setup, receiver, lines, timeout=120):
    d = make_daemon().start()
    write_lines(setup.logs / "app.log", lines)
    wait_lines(receiver, len(lines), d, timeout)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    return got


def test_per_record_failures_are_retried(make_daemon, setup, receiver):
    receiver.control(fail_every_nth_record=3)
    lines = file_events(3000, "nth")
    setup.config(receiver.url, socket=False)
    got = run_until_delivered(make_daemon, setup, receiver, lines)
    assert_exactly_once(got, lines)
    assert duplicates(got) == 0
    s = receiver.stats()
    assert s["records_failed"] > 0, s


def test_whole_call_errors_are_retried(make_daemon, setup, receiver):
    receiver.control(fail_next_calls=4, status=500, type="InternalFailure")
    lines = file_events(2000, "500s")
    setup.config(receiver.url, socket=False)
    got = run_until_delivered(make_daemon, setup, receiver, lines)
    assert_exactly_once(got, lines)
    assert duplicates(got) == 0
    assert receiver.stats()["refused"].get("InternalFailure") == 4


def test_throttled_calls_are_retried(make_daemon, setup, receiver):
    receiver.control(fail_next_calls=3, status=503,
                     type="ServiceUnavailableException",
                     fail_every_nth_record=7)
    lines = file_events(1500, "503s")
    setup.config(receiver.url, socket=False)
    got = run_until_delivered(make_daemon, setup, receiver, lines)
    assert_exactly_once(got, lines)
    assert duplicates(got) == 0


def test_receiver_down_at_start(make_daemon, setup, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    setup.config("http://127.0.0.1:%d" % port, socket=False)
    lines = file_events(1000, "late")
    d = make_daemon().start()
    write_lines(setup.logs / "app.log", lines)
    wait_for(lambda: sum(f.stat().st_size for f in setup.spool.rglob("*")
                         if f.is_file()) > 0, 20, "the daemon to spool", d)
    # Let it try the closed port and back off a few times first.
    time.sleep(2)
    assert d.alive(), d.tail()
    rx = FirehoseReceiver(tmp_path / "late-out", streams=[STREAM],
                          region=REGION, access_key=ACCESS_KEY,
                          secret_key=SECRET_KEY, port=port).start()
    try:
        wait_lines(rx, len(lines), d, 120)
        d.stop()
        got = delivered(rx.out_dir)
    finally:
        rx.stop()
    check_meta(got)
    assert_exactly_once(got, lines)
    assert duplicates(got) == 0
