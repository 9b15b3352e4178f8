# SPDX-License-Identifier: MIT
"""Validation rules through the daemon, and rejects kept in a local file.

Events that break a rule arrive as `_aaas_reject` records naming the rule
and carrying the raw line, between the good events around them, which
arrive byte for byte.  With reject_file set, rejects go to that file and
none reaches the receiver.
"""

import json
import os
import socket

from conftest import (check_meta, delivered, events, jline, rejects,
                      wait_for, wait_lines, write_lines)
from test_check_config import check, line_of

RULES = ('validate { required = { "actor.id", "action" } '
         'types = { "actor.id: string", "n: number | null", '
         '"tags: array" } max_bytes = 300 max_depth = 3 }')

# (line, the reason it must be refused with)
BAD = [
    (jline(action="a", n=1), "missing required member 'actor.id'"),
    (jline(actor={"id": "u1"}), "missing required member 'action'"),
    (jline(action="a", actor={"id": 7}),
     "member 'actor.id' is a number, expected string"),
    (jline(action="a", actor={"id": "u1"}, n="12"),
     "member 'n' is a string, expected number or null"),
    (jline(action="a", actor={"id": "u1"}, tags={"x": 1}),
     "member 'tags' is an object, expected array"),
    (jline(action="a", actor={"id": "u1"}, pad="x" * 300),
     "event of 343 bytes is over the limit of 300 bytes"),
    (b'{"action":"a","actor":{"id":"u1","d":{"e":[1]}}}',
     "nesting deeper than 3 at byte 42"),
    # A line that is not JSON is refused for that, rules or not.
    (b'{"action":"a","actor":{"id":"u1"},}',
     "invalid JSON at byte 35: invalid object key (must be a string)"),
]


def good_line(tag, i):
    return jline(tag=tag, good=i, action="login",
                 actor={"id": "u%d" % i, "d": {"ok": i}},
                 n=None if i % 2 else i * 1.5, tags=["t"])


def interleaved(tag):
    """good, bad, good, ..., good: all lines, and the good ones."""
    good, out = [], []
    for i, (bad, _) in enumerate(BAD):
        g = good_line(tag, i)
        good.append(g)
        out += [g, bad]
    g = good_line(tag, len(BAD))
    good.append(g)
    out.append(g)
    return out, good


def check_rejects_in_order(lines, good):
    check_meta(lines)
    got_good = events(lines)
    assert sorted(ln.original for ln in got_good) == sorted(good)
    got_bad = sorted(rejects(lines), key=lambda ln: ln.meta["seq"])
    assert [(ln.reject["reason"], ln.reject_raw()) for ln in got_bad] == \
        [(why, raw) for raw, why in BAD]
    seqs = {ln.original: ln.meta["seq"] for ln in got_good}
    for i, ln in enumerate(got_bad):
        assert seqs[good[i]] < ln.meta["seq"] < seqs[good[i + 1]], i


def send_socket(setup, lines):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(setup.socket_path))
    s.sendall(b"".join(ln + b"\n" for ln in lines))
    return s


def test_rules_on_the_socket(make_daemon, setup, receiver):
    setup.config(receiver.url, socket=True, inputs=[], top_extra=RULES)
    all_lines, good = interleaved("socket")
    d = make_daemon().start()
    s = send_socket(setup, all_lines)
    wait_lines(receiver, len(all_lines), d)
    s.close()
    text = d.stop()
    got = delivered(receiver.out_dir)
    assert len(got) == len(all_lines)
    check_rejects_in_order(got, good)
    assert "rejected %d (0 kept locally)" % len(BAD) in text


def test_rules_of_one_input(make_daemon, setup, receiver):
    """An input's own section adds to the top-level rules, for it alone."""
    other = setup.root / "other"
    other.mkdir()
    path = setup.config(receiver.url, socket=False, inputs=[
        ("app", {"path": setup.logs / "*.log"}),
        ("other", {"path": other / "*.log"})])
    text = path.read_text().replace(
        'input "app" {', 'input "app" { ' + RULES, 1)
    path.write_text(text)
    all_lines, good = interleaved("file")
    d = make_daemon().start()
    write_lines(setup.logs / "a.log", all_lines)
    # The same lines in the other input break no rule of its own.
    write_lines(other / "o.log", all_lines[:6])
    wait_lines(receiver, len(all_lines) + 6, d)
    d.stop()
    got = delivered(receiver.out_dir)
    mine = [ln for ln in got if ln.meta["input"] == "app"]
    theirs = [ln for ln in got if ln.meta["input"] == "other"]
    check_rejects_in_order(mine, good)
    assert [ln.original for ln in theirs] == all_lines[:6]


def read_reject_file(path):
    out = []
    for raw in path.read_bytes().splitlines():
        obj = json.loads(raw)
        assert set(obj) == {"_aaas_reject", "_aaas"}, obj
        out.append(obj)
    return out


def test_reject_file_keeps_rejects_local(make_daemon, setup, receiver):
    rej = setup.state / "rejects.jsonl"
    setup.config(receiver.url, socket=True, inputs=[
        ("app", {"path": setup.logs / "*.log"})],
        top_extra=RULES + "\nreject_file = %s" % json.dumps(str(rej)))
    all_lines, good = interleaved("kept")
    d = make_daemon().start()
    s = send_socket(setup, all_lines)
    write_lines(setup.logs / "a.log", all_lines)
    wait_lines(receiver, 2 * len(good), d)
    wait_for(lambda: rej.exists() and
             len(rej.read_bytes().splitlines()) == 2 * len(BAD),
             30, "%d lines in %s" % (2 * len(BAD), rej), d)
    s.close()
    text = d.stop()

    got = delivered(receiver.out_dir)
    check_meta(got)
    assert rejects(got) == []
    assert sorted(ln.original for ln in got) == sorted(good * 2)
    kept = read_reject_file(rej)
    for source in ("socket", "file"):
        mine = [k for k in kept if k["_aaas"]["source"] == source]
        assert [(k["_aaas_reject"]["reason"],
                 k["_aaas_reject"]["raw"].encode()) for k in mine] == \
            [(why, raw) for raw, why in BAD], source
        for k in mine:
            # Not spooled, so no sequence number of the spool's.
            assert "seq" not in k["_aaas"], k
    assert "rejected %d (%d kept locally)" % (2 * len(BAD),
                                              2 * len(BAD)) in text


def test_reject_file_per_input_and_rotation(make_daemon, setup, receiver):
    """The socket delivers its rejects; the input keeps its own, and a
    file renamed away by logrotate is followed by a new one."""
    rej = setup.state / "app-rejects.jsonl"
    path = setup.config(receiver.url, socket=True, inputs=[
        ("app", {"path": setup.logs / "*.log", "reject_file": rej})],
        top_extra=RULES)
    assert "reject_file" in path.read_text()
    d = make_daemon().start()
    bad1, why1 = BAD[0]
    bad2, why2 = BAD[2]
    write_lines(setup.logs / "a.log", [good_line("r", 1), bad1])
    wait_lines(receiver, 1, d)
    wait_for(lambda: rej.exists() and rej.stat().st_size > 0, 30,
             "the first reject in %s" % rej, d)
    os.rename(rej, str(rej) + ".1")
    write_lines(setup.logs / "a.log", [bad2, good_line("r", 2)], mode="ab")
    s = send_socket(setup, [bad2])
    wait_lines(receiver, 3, d)
    wait_for(lambda: rej.exists() and rej.stat().st_size > 0, 30,
             "a new %s after the rename" % rej, d)
    s.close()
    d.stop()

    old = read_reject_file(setup.state / "app-rejects.jsonl.1")
    new = read_reject_file(rej)
    assert [k["_aaas_reject"]["reason"] for k in old] == [why1]
    assert [k["_aaas_reject"]["reason"] for k in new] == [why2]
    assert all(k["_aaas"]["input"] == "app" for k in old + new)
    got = delivered(receiver.out_dir)
    check_meta(got)
    assert sorted(ln.original for ln in events(got)) == \
        sorted([good_line("r", 1), good_line("r", 2)])
    sock_rejects = rejects(got)
    assert [(ln.reject["reason"], ln.meta["source"]) for ln in
            sock_rejects] == [(why2, "socket")]


def test_bad_rules_are_named_by_line(build, setup):
    path = setup.config("http://127.0.0.1:9", top_extra=(
        'validate {\n  required = { "a..b" }\n'
        '  types = { "n: text" }\n  max_depth = 99\n}'))
    text = path.read_text()
    rc, err = check(build, setup, path)
    assert rc == 1, err
    for needle, msg in (
            ("a..b", "validate.required: empty member name in path 'a..b'"),
            ("n: text", "validate.types: unknown type 'text'"),
            ("max_depth", "validate.max_depth: 99 is out of range (1 to 64)")):
        want = "%s:%d: %s" % (path, line_of(text, needle), msg)
        assert want in err, "expected %r in stderr:\n%s" % (want, err)


def test_unwritable_reject_file_stops_start(make_daemon, setup, receiver):
    rej = setup.root / "no-such-dir" / "rejects.jsonl"
    setup.config(receiver.url, socket=True, inputs=[],
                 socket_extra="reject_file = %s" % json.dumps(str(rej)))
    d = make_daemon().start(wait_ready=False)
    wait_for(lambda: d.proc.poll() is not None, 30, "aaasd to exit")
    assert d.proc.returncode != 0
    err = d.stderr()
    assert ("cannot open reject file '%s': No such file or directory, "
            "exiting" % rej) in err, err
    d.cleanup()


def test_reload_brings_new_rules_and_inputs(make_daemon, setup, receiver):
    """Rules and added inputs of a reloaded config apply to what follows."""
    from test_service import reload_and_wait

    other = setup.root / "later"
    other.mkdir()
    path = setup.config(receiver.url, socket=True, inputs=[
        ("app", {"path": setup.logs / "*.log"})])
    d = make_daemon().start()
    first = [jline(phase=1, n=i) for i in range(3)]
    s = send_socket(setup, first)
    wait_lines(receiver, 3, d)
    s.close()

    # Rules at top level and a second input, both new.
    text = path.read_text() + "\n" + RULES + "\n"
    text += 'input "later" { path = %s }\n' % json.dumps(str(other / "*.log"))
    path.write_text(text)
    reload_and_wait(d, "reload: '%s' applied" % path)
    bad, why = BAD[0]
    s = send_socket(setup, [bad, good_line("after", 0)])
    write_lines(other / "l.log", [bad])
    wait_lines(receiver, 6, d)
    s.close()
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    late = [ln for ln in got if ln.meta["seq"] > 3]
    reasons = sorted(ln.reject["reason"] for ln in rejects(late))
    assert reasons == [why, why], reasons
    assert [ln.original for ln in events(late)] == [good_line("after", 0)]
