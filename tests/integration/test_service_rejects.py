# SPDX-License-Identifier: MIT
"""Records the service refuses for good become reject lines, not a stall."""

import re

from conftest import (assert_exactly_once, check_meta, delivered, duplicates,
                      events, jline, rejects, wait_for, wait_lines,
                      write_lines)

MARK = "REFUSE-ME"
LEFT_RE = re.compile(r"(\d+) left in the spool")


def make_lines(n, bad_every):
    """Writer lines; every bad_every-th holds MARK past the raw head kept."""
    out, bad = [], []
    for i in range(n):
        if i % bad_every == bad_every - 1:
            ln = jline(n=i, pad="q" * 700, why=MARK)
            bad.append(ln)
        else:
            ln = jline(n=i, pad="p" * (i % 50))
        out.append(ln)
    return out, bad


def start(make_daemon, setup, receiver, lines, extra=""):
    setup.config(receiver.url, socket=False, firehose_extra=extra)
    d = make_daemon().start()
    write_lines(setup.logs / "app.log", lines)
    return d


def test_refused_record_is_replaced_and_the_rest_goes(make_daemon, setup,
                                                      receiver):
    receiver.control(reject_containing=MARK)
    lines, bad = make_lines(400, 40)
    d = start(make_daemon, setup, receiver, lines)
    wait_lines(receiver, len(lines), d)
    text = d.stop()

    got = delivered(receiver.out_dir)
    check_meta(got)
    good = [ln for ln in lines if ln not in bad]
    assert_exactly_once(got, good)
    assert duplicates(got) == 0
    rj = rejects(got)
    assert len(rj) == len(bad) == receiver.stats()["records_rejected"]

    by_seq = {ln.meta["seq"]: ln for ln in got}
    for ln in rj:
        r = ln.reject
        assert r["reason"] == "refused by the service for good", r
        assert r["error_code"] == "InvalidArgumentException", r
        assert r["error_message"] == \
            "Record contains a value the destination refuses", r
        assert r["first_seq"] == r["last_seq"] == ln.meta["seq"], r
        assert r["events"] == 1, r
        # The head of the writer's bytes, cut before the marker.
        assert r["raw_truncated"] is True, r
        assert len(r["raw"]) == 512, r
        assert any(b.startswith(r["raw"].encode()) for b in bad), r
        assert MARK not in r["raw"], r
        assert ln.meta["source"] == "file" and ln.meta["input"] == "app"
        assert r["bytes"] > 700, r
    # Rejects hold the sequence numbers the good lines leave free.
    seqs = sorted(by_seq)
    assert seqs == list(range(seqs[0], seqs[0] + len(lines))), seqs[:10]

    assert "for good (InvalidArgumentException: Record contains" in text
    m = LEFT_RE.search(text)
    assert m and m.group(1) == "0", text[-2000:]
    assert "refused by the service %d," % len(bad) in text


def test_packed_record_refused_names_all_its_events(make_daemon, setup,
                                                    receiver):
    # Every packed record above 3000 bytes is refused; small ones pass.
    receiver.control(reject_records_over=3000)
    lines = [jline(n=i, pad="z" * 40) for i in range(600)]
    d = start(make_daemon, setup, receiver, lines, "pack = true")
    wait_for(lambda: len(events(delivered(receiver.out_dir))) +
             sum(ln.reject["events"] for ln in rejects(
                 delivered(receiver.out_dir))) >= len(lines),
             90, "every event delivered or covered by a reject", d)
    d.stop()

    got = delivered(receiver.out_dir)
    check_meta(got)
    covered = set()
    for ln in rejects(got):
        r = ln.reject
        assert r["error_code"] == "InvalidArgumentException"
        assert "exceeds the destination's limit of 3000" in \
            r["error_message"]
        span = set(range(r["first_seq"], r["last_seq"] + 1))
        assert len(span) == r["events"] and r["events"] > 1, r
        assert not span & covered, r
        covered |= span
        assert ln.meta["seq"] == r["first_seq"]
    for ln in events(got):
        assert ln.meta["seq"] not in covered
        covered.add(ln.meta["seq"])
    assert len(covered) == len(lines)
    assert min(covered) + len(lines) - 1 == max(covered)


def test_refused_reject_line_is_kept_until_taken(make_daemon, setup,
                                                 receiver):
    # The reject lines themselves are refused too at first: nothing may be
    # dropped, so they wait in the spool and go once the stream takes them.
    receiver.control(reject_containing=MARK, reject_records_over=600)
    lines, bad = make_lines(100, 25)
    d = start(make_daemon, setup, receiver, lines)
    good = [ln for ln in lines if ln not in bad]
    wait_lines(receiver, len(good), d)
    wait_for(lambda: "refused even the reject line" in d.stderr(), 30,
             "the refused reject line to be reported", d)
    assert len(rejects(delivered(receiver.out_dir))) == 0
    receiver.control(reject_records_over=0)
    wait_lines(receiver, len(lines), d)
    text = d.stop()

    got = delivered(receiver.out_dir)
    check_meta(got)
    assert_exactly_once(got, good)
    assert len(rejects(got)) == len(bad)
    assert "0 left in the spool" in text
