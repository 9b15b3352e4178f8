# SPDX-License-Identifier: MIT
"""The receiver in each fault mode: exactly the failed records go again.

Every test delivers a known set of lines through a faulty stream and then
checks that each arrived, and arrived once, except where the receiver
stored a call whose answer the daemon never saw: those lines may arrive
twice, and the test counts exactly that many extra copies.
"""

import collections

import pytest

from conftest import (assert_exactly_once, check_meta, delivered, duplicates,
                      jline, wait_for, write_lines)


def lines_for(tag, n):
    return [jline(t=tag, n=i, pad="f" * (i % 61)) for i in range(n)]


def deliver(make_daemon, setup, receiver, lines, extra="", timeout=150):
    setup.config(receiver.url, socket=False, firehose_extra=extra,
                 log_level="info")
    d = make_daemon().start()
    write_lines(setup.logs / "app.log", lines)
    def done():
        st = receiver.stats()
        return st["newlines_stored"] >= \
            len(lines) + st["newlines_stored_unanswered"]
    wait_for(done, timeout, "%d lines plus the unanswered ones" % len(lines),
             d)
    text = d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    return got, text


def assert_only_lost_answers_repeat(got, lines, receiver):
    """Each line arrives; extra copies only for calls never answered."""
    want = collections.Counter(lines)
    have = collections.Counter(ln.original for ln in got)
    assert not want - have, "lines lost: %r" % next(iter(want - have))
    assert set(have) == set(want), "unexpected lines"
    assert duplicates(got) == receiver.stats()["newlines_stored_unanswered"]


def test_half_the_calls_throttled(make_daemon, setup, receiver):
    receiver.control(throttle_percent=50, throttle_seed=7)
    lines = lines_for("throttle50", 3000)
    got, text = deliver(make_daemon, setup, receiver, lines,
                        "max_in_flight = 4")
    assert_exactly_once(got, lines)
    assert duplicates(got) == 0
    s = receiver.stats()
    assert s["throttled_calls"] >= 5, s
    assert s["refused"]["ServiceUnavailableException"] == \
        s["throttled_calls"], s


def test_half_the_records_fail_and_half_the_calls(make_daemon, setup,
                                                  receiver):
    receiver.control(fail_every_nth_record=2, throttle_percent=50,
                     throttle_seed=3)
    lines = lines_for("records50", 2000)
    got, _ = deliver(make_daemon, setup, receiver, lines)
    assert_exactly_once(got, lines)
    assert duplicates(got) == 0
    s = receiver.stats()
    # Every failed record was sent again, and only those.
    assert s["records_accepted"] == len(lines), s
    assert s["records_failed"] >= len(lines) // 2, s


@pytest.mark.parametrize("status,etype", [
    (500, "InternalFailure"),
    (503, "ServiceUnavailableException"),
])
def test_server_errors(make_daemon, setup, receiver, status, etype):
    receiver.control(fail_next_calls=6, status=status, type=etype)
    lines = lines_for("e%d" % status, 1500)
    got, _ = deliver(make_daemon, setup, receiver, lines)
    assert_exactly_once(got, lines)
    assert duplicates(got) == 0
    assert receiver.stats()["refused"][etype] == 6


def test_reset_connections(make_daemon, setup, receiver):
    receiver.control(reset_connection_next=5)
    lines = lines_for("reset", 1500)
    got, text = deliver(make_daemon, setup, receiver, lines)
    assert_exactly_once(got, lines)
    assert duplicates(got) == 0
    assert receiver.stats()["reset"] == 5
    # The daemon cannot know the reset calls were not stored.
    assert "possible duplicates" in text


def test_slow_answers_within_the_timeout(make_daemon, setup, receiver):
    receiver.control(delay_ms=700)
    lines = lines_for("slow", 1200)
    got, _ = deliver(make_daemon, setup, receiver, lines, "timeout = 5000")
    assert_exactly_once(got, lines)
    assert duplicates(got) == 0
    assert receiver.stats()["calls"] == receiver.stats()["calls_ok"]


def test_stalled_answers_end_with_the_timeout(make_daemon, setup, receiver):
    # The stalled calls are never stored: the daemon's timeout must end
    # them and the lines go again, once.
    receiver.control(stall_next_calls=3, stall_ms=20000)
    lines = lines_for("stall", 1200)
    got, text = deliver(make_daemon, setup, receiver, lines,
                        "timeout = 1500")
    assert_exactly_once(got, lines)
    assert duplicates(got) == 0
    assert receiver.stats()["stalled"] == 3
    assert "Timeout was reached" in text or "timed out" in text, text[-3000:]


def test_answers_later_than_the_timeout(make_daemon, setup, receiver):
    receiver.control(store_then_stall_next=2, stall_ms=5000)
    lines = lines_for("late", 1200)
    got, _ = deliver(make_daemon, setup, receiver, lines, "timeout = 1500")
    assert receiver.stats()["stored_unanswered_calls"] == 2
    assert receiver.stats()["newlines_stored_unanswered"] > 0
    assert_only_lost_answers_repeat(got, lines, receiver)


def test_lost_answers(make_daemon, setup, receiver):
    receiver.control(store_then_drop_next=3)
    lines = lines_for("lost", 1500)
    got, _ = deliver(make_daemon, setup, receiver, lines)
    assert receiver.stats()["stored_unanswered_calls"] == 3
    assert_only_lost_answers_repeat(got, lines, receiver)


def test_malformed_answers(make_daemon, setup, receiver):
    receiver.control(malformed_next_calls=3)
    lines = lines_for("garbled", 1500)
    got, text = deliver(make_daemon, setup, receiver, lines)
    assert receiver.stats()["stored_unanswered_calls"] == 3
    assert_only_lost_answers_repeat(got, lines, receiver)
    assert "not valid JSON" in text, text[-3000:]
