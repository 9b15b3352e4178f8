# SPDX-License-Identifier: MIT
"""Acknowledgements on the event socket: opt-in, in order, once durable."""

import json
import os
import socket
import threading
import time

from conftest import check_meta, delivered, events, jline, rejects, \
    wait_for, wait_lines

HELLO = b'{"_aaas_hello":{"ack":true}}\n'


def connect(path, timeout=30):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(path))
    return s


class Replies:
    """Reads reply lines from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed, have %r" % self.buf)
            self.buf += data
        ln, self.buf = self.buf.split(b"\n", 1)
        return json.loads(ln)


def spool_bytes(setup):
    out = b""
    for dirpath, _, files in os.walk(setup.spool):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                out += fh.read()
    return out


def test_ack_accepted_and_rejected(make_daemon, setup, receiver):
    setup.config(receiver.url, inputs=[])
    d = make_daemon().start()
    s = connect(setup.socket_path)
    r = Replies(s)
    s.sendall(HELLO)
    assert r.line() == {"_aaas_hello": {"ack": True, "version": 1}}
    good = jline(actor="alice", action="read", marker="ack-good-1")
    s.sendall(good + b"\n" + b'{"broken": \n' +
              b'{"_aaas":{"seq":1},"actor":"mallory"}\n' +
              jline(actor="bob", marker="ack-good-2") + b"\n")
    acks = [r.line()["_aaas_ack"] for _ in range(4)]
    # Accepted means spooled: the event is in the spool files by now.
    assert b"ack-good-1" in spool_bytes(setup)
    assert b"ack-good-2" in spool_bytes(setup)
    assert [a["status"] for a in acks] == ["accepted", "rejected",
                                           "rejected", "accepted"]
    seqs = [a["seq"] for a in acks]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert "reason" not in acks[0] and "reason" not in acks[3]
    assert acks[1]["reason"] and acks[2]["reason"]
    assert "_aaas" in acks[2]["reason"], acks[2]
    s.close()

    wait_lines(receiver, 4, d)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    by_seq = {ln.meta["seq"]: ln for ln in got}
    assert by_seq[seqs[0]].original == good
    assert by_seq[seqs[0]].meta["peer"]["pid"] == os.getpid()
    assert by_seq[seqs[1]].reject is not None
    assert by_seq[seqs[2]].reject is not None
    assert by_seq[seqs[3]].reject is None


def test_hello_not_understood_closes(make_daemon, setup, receiver):
    setup.config(receiver.url, inputs=[])
    d = make_daemon().start()
    s = connect(setup.socket_path)
    s.sendall(b'{"_aaas_hello":{"ack":"yes"}}\n' + jline(n=1) + b"\n")
    r = Replies(s)
    reply = r.line()
    assert "error" in reply["_aaas_hello"], reply
    assert s.recv(100) == b""
    s.close()
    # Neither the hello nor what followed it became an event.
    time.sleep(0.5)
    d.stop()
    assert delivered(receiver.out_dir) == []


def test_writer_without_hello_gets_no_bytes(make_daemon, setup, receiver):
    setup.config(receiver.url, inputs=[])
    d = make_daemon().start()
    s = connect(setup.socket_path)
    lines = [jline(n=i) for i in range(50)]
    s.sendall(b"".join(ln + b"\n" for ln in lines))
    s.shutdown(socket.SHUT_WR)
    assert s.recv(100) == b""
    s.close()
    wait_lines(receiver, 50, d)
    d.stop()
    got = delivered(receiver.out_dir)
    assert sorted(ln.original for ln in events(got)) == sorted(lines)


def test_writer_shut_down_still_gets_its_acks(make_daemon, setup, receiver):
    setup.config(receiver.url, inputs=[])
    d = make_daemon().start()
    s = connect(setup.socket_path)
    s.sendall(HELLO + b"".join(jline(n=i) + b"\n" for i in range(200)))
    s.shutdown(socket.SHUT_WR)
    r = Replies(s)
    assert "_aaas_hello" in r.line()
    acks = [r.line()["_aaas_ack"] for _ in range(200)]
    assert all(a["status"] == "accepted" for a in acks)
    assert s.recv(100) == b""
    s.close()
    d.stop()


def test_unread_acks_block_only_that_writer(make_daemon, setup, receiver):
    """A writer that never reads its replies is stopped, nobody else."""
    setup.config(receiver.url, inputs=[], log_level="info")
    d = make_daemon().start()
    total = 20000
    s = connect(setup.socket_path, timeout=None)
    sent = [0]

    def flood():
        s.sendall(HELLO)
        for i in range(total):
            s.sendall(jline(flood=i, pad="f" * 300) + b"\n")
            sent[0] = i + 1

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    # The writer stalls: the daemon stopped reading it.
    last = -1
    while True:
        time.sleep(1.0)
        if sent[0] == last or sent[0] == total:
            break
        last = sent[0]
    assert sent[0] < total, "the writer was never held back"

    # Another writer is not held up by the stalled one.
    other = [jline(other=i) for i in range(500)]
    o = connect(setup.socket_path)
    o.sendall(b"".join(ln + b"\n" for ln in other))
    o.close()
    wait_for(lambda: sum(1 for ln in events(delivered(receiver.out_dir))
                         if b'"other"' in ln.original) == 500,
             60, "the other writer's events", d)

    rss = vm_kib(d.proc.pid, "VmRSS")
    assert rss < 64 * 1024, rss

    # Reading the replies lets the first writer finish.
    r = Replies(s)
    got = 0
    seqs = []
    s.settimeout(60)
    while got < total:
        a = r.line()
        if "_aaas_hello" in a:
            continue
        assert a["_aaas_ack"]["status"] == "accepted"
        seqs.append(a["_aaas_ack"]["seq"])
        got += 1
    t.join(60)
    assert sent[0] == total
    assert seqs == sorted(seqs)
    s.close()
    wait_lines(receiver, total + 500, d, 120)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    assert len(events(got)) == total + 500
    assert rejects(got) == []


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (field, pid))
