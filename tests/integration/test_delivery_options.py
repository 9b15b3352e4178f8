# SPDX-License-Identifier: MIT
"""Record packing, its billing counters, pacing and throttled streams."""

import re
import time

from conftest import (assert_exactly_once, check_meta, delivered, duplicates,
                      jline, object_files, wait_lines, write_lines)

STOP_RE = re.compile(r"(\d+) calls, (\d+) records, billed (\d+) bytes "
                     r"\((\d+) unpacked\)")


def event_400(i):
    """One writer line of 400 bytes before the daemon adds `_aaas`."""
    head = jline(n=i, pad="")
    return jline(n=i, pad="x" * (400 - len(head)))


def run(make_daemon, setup, receiver, lines, extra="", timeout=120):
    setup.config(receiver.url, socket=False, firehose_extra=extra,
                 log_level="info")
    d = make_daemon().start()
    write_lines(setup.logs / "app.log", lines)
    wait_lines(receiver, len(lines), d, timeout)
    text = d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    assert_exactly_once(got, lines)
    assert duplicates(got) == 0
    m = STOP_RE.search(text)
    assert m, text[-2000:]
    return got, [int(x) for x in m.groups()], text


def stored_records(receiver):
    return receiver.stats()["records_accepted"]


def test_packing_puts_many_events_in_a_record(make_daemon, setup, receiver):
    lines = [event_400(i) for i in range(2000)]
    got, (calls, records, billed, unpacked), _ = run(
        make_daemon, setup, receiver, lines, "pack = true")
    assert records == stored_records(receiver)
    # each record holds many newline-terminated events, none split
    assert records < len(lines) / 10, records
    assert billed < unpacked / 5, (billed, unpacked)
    assert unpacked == len(lines) * 5120


def test_unpacked_bills_one_unit_per_event(make_daemon, setup, receiver):
    lines = [event_400(i) for i in range(500)]
    _, (calls, records, billed, unpacked), _ = run(
        make_daemon, setup, receiver, lines)
    assert records == len(lines) == stored_records(receiver)
    assert billed == unpacked == len(lines) * 5120


def test_rate_limit_paces_calls(make_daemon, setup, receiver):
    lines = [jline(n=i) for i in range(600)]
    t0 = time.monotonic()
    _, (calls, records, _, _), _ = run(
        make_daemon, setup, receiver, lines, "max_records_per_second = 200")
    took = time.monotonic() - t0
    # 600 records at 200/s, a one-second burst allowed: at least ~2 s,
    # and no call carries more than a second's worth
    assert took >= 1.8, took
    assert calls >= 3, calls


def test_throttled_stream_slows_down_and_loses_nothing(make_daemon, setup,
                                                       receiver):
    receiver.control(fail_next_calls=6, status=400,
                     type="ThrottlingException",
                     fail_every_nth_record=2)
    lines = [jline(n=i, pad="t" * (i % 50)) for i in range(3000)]
    got, _, text = run(make_daemon, setup, receiver, lines,
                       "max_in_flight = 8")
    s = receiver.stats()
    assert s["refused"].get("ThrottlingException") == 6
    assert s["records_failed"] > 0
    assert len(object_files(receiver.out_dir)) > 0
