# SPDX-License-Identifier: MIT
"""Bad input arrives as rejects with its reason; good input around it too."""

import os
import re
import socket

import pytest

from conftest import (check_meta, delivered, events, jline, rejects,
                      wait_lines, write_lines)

BIG = b'{"big":"' + b"x" * 5000 + b'"}'

# (bytes of the line, phrase the reason must hold)
BAD = [
    (b"[1,2,3]", "not a JSON object"),
    (b'"just a string"', "not a JSON object"),
    (b'{"a" 1}', "invalid JSON"),
    (b'{"a":1,', "truncated JSON"),
    (b'{"text":"\xff\xfe bad bytes"}', "invalid UTF-8"),
    (b"", "empty line"),
    (BIG, re.compile(r"line longer than \d+ bytes")),
    (b'{"user":"x","_aaas":{"agent":"forged"}}', "reserved member '_aaas'"),
]


def stream_of_lines(tag):
    """good, bad, good, bad, ..., good: the expected good lines and all."""
    good = []
    out = []
    for i, (bad, _) in enumerate(BAD):
        g = jline(tag=tag, good=i)
        good.append(g)
        out += [g, bad]
    g = jline(tag=tag, good=len(BAD))
    good.append(g)
    out.append(g)
    return out, good


def reason_matches(reason, phrase):
    if isinstance(phrase, str):
        return phrase in reason
    return bool(phrase.search(reason))


def check_delivery(lines, good, source):
    check_meta(lines)
    mine = [ln for ln in lines if ln.meta["source"] == source]
    got_good = events(mine)
    assert sorted(ln.original for ln in got_good) == sorted(good)
    got_bad = sorted(rejects(mine), key=lambda ln: ln.meta["seq"])
    assert len(got_bad) == len(BAD), [r.reject for r in got_bad]
    for ln, (raw, phrase) in zip(got_bad, BAD):
        r = ln.reject
        assert reason_matches(r["reason"], phrase), (r, phrase)
        if raw is BIG:
            # How much of an over-long line is kept is the daemon's choice;
            # what it keeps must be the line's start.
            assert raw.startswith(ln.reject_raw()), r
        else:
            assert ln.reject_raw() == raw, r
            if b"\xff" in raw:
                assert "raw_base64" in r and "raw" not in r, r
            else:
                assert "raw" in r, r
    # Read order is kept: each reject lies between its good neighbours.
    seqs = {ln.original: ln.meta["seq"] for ln in got_good}
    for i, ln in enumerate(got_bad):
        assert seqs[good[i]] < ln.meta["seq"] < seqs[good[i + 1]], i


def test_bad_lines_in_a_file(make_daemon, setup, receiver):
    setup.config(receiver.url, socket=False, inputs=[
        ("app", {"path": setup.logs / "*.log", "max_line": "4k"})])
    all_lines, good = stream_of_lines("file")
    d = make_daemon().start()
    write_lines(setup.logs / "bad.log", all_lines)
    wait_lines(receiver, len(all_lines), d)
    tail = jline(tag="file", after="all")
    write_lines(setup.logs / "bad.log", [tail], mode="ab")
    wait_lines(receiver, len(all_lines) + 1, d)
    assert d.alive()
    d.stop()
    got = delivered(receiver.out_dir)
    assert [ln.meta["path"] for ln in got] == \
        [str(setup.logs / "bad.log")] * len(got)
    assert all(ln.meta["input"] == "app" for ln in got)
    check_delivery([ln for ln in got if ln.original != tail], good, "file")
    assert [ln.original for ln in got].count(tail) == 1


def test_bad_lines_on_the_socket(make_daemon, setup, receiver):
    setup.config(receiver.url, socket=True,
                 socket_extra='max_event_size = "4k"')
    all_lines, good = stream_of_lines("socket")
    d = make_daemon().start()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(setup.socket_path))
    s.sendall(b"".join(ln + b"\n" for ln in all_lines))
    wait_lines(receiver, len(all_lines), d)
    # Same connection, still served after all of that.
    tail = jline(tag="socket", after="all")
    s.sendall(tail + b"\n")
    wait_lines(receiver, len(all_lines) + 1, d)
    s.close()
    assert d.alive()
    d.stop()
    got = delivered(receiver.out_dir)
    check_delivery([ln for ln in got if ln.original != tail], good, "socket")
    assert [ln.original for ln in got].count(tail) == 1
    for ln in got:
        peer = ln.meta["peer"]
        assert {k: peer[k] for k in ("pid", "uid", "gid")} == {
            "pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid()}, peer
        assert peer["exe"] == os.readlink("/proc/self/exe"), peer


@pytest.mark.parametrize("raw", [b"{}", b'{ "spaced" : [ 1 , 2 ] }',
                                 b'{"nested":{"_aaas":"deep is fine"}}'])
def test_edge_objects_arrive_intact(make_daemon, setup, receiver, raw):
    setup.config(receiver.url, socket=False)
    d = make_daemon().start()
    write_lines(setup.logs / "edge.log", [raw])
    wait_lines(receiver, 1, d)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    assert [ln.original for ln in got] == [raw]
