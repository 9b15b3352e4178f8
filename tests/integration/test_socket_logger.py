# SPDX-License-Identifier: MIT
"""aaas-logger end to end: events built from options, with and without --ack."""

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import check_meta, delivered, events, wait_lines


def logger(build, *args, stdin=None, timeout=60):
    exe = build.path / "aaas-logger"
    if not exe.exists():
        pytest.fail("%s has no aaas-logger binary" % build.path)
    return subprocess.run([str(exe)] + list(args), input=stdin,
                          capture_output=True, timeout=timeout,
                          env=build.env())


def test_logger_without_ack(build, make_daemon, setup, receiver):
    setup.config(receiver.url, inputs=[])
    d = make_daemon().start()
    sock = str(setup.socket_path)
    p = logger(build, "--socket", sock, "--actor", "alice", "--action",
               "login", "--field", "ip=10.0.0.7", "-f", "note=caf\u00e9 \"q\"",
               "it", "worked")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"" and p.stderr == b""
    p = logger(build, "--socket", sock, "--json", "-", "--field", "via=stdin",
               stdin=b'{"n": 1,\n "deep": {"a": [1, 2.5e3, null, true]}}\n'
                     b'{"n": 2}\n')
    assert p.returncode == 0, p.stderr
    wait_lines(receiver, 3, d)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    objs = sorted((json.loads(ln.original) for ln in events(got)),
                  key=lambda o: o.get("n", 0))
    assert objs == [
        {"actor": "alice", "action": "login", "ip": "10.0.0.7",
         "note": "caf\u00e9 \"q\"", "message": "it worked"},
        {"n": 1, "deep": {"a": [1, 2.5e3, None, True]}, "via": "stdin"},
        {"n": 2, "via": "stdin"},
    ]
    # Each went out as one compact line.
    raws = sorted(ln.original for ln in events(got))
    assert b'{"n":2,"via":"stdin"}' in raws
    # The logger waits for the daemon to read to the end, so it is alive
    # when the daemon looks it up.
    for ln in events(got):
        assert ln.meta["peer"]["exe"] == str(build.path / "aaas-logger")
        assert ln.meta["peer"]["comm"] == "aaas-logger"


def test_logger_ack_accepted_and_refused(build, make_daemon, setup, receiver):
    setup.config(receiver.url, inputs=[])
    d = make_daemon().start()
    sock = str(setup.socket_path)
    p = logger(build, "--socket", sock, "--ack", "--verbose", "--actor",
               "bob", "--action", "delete")
    assert p.returncode == 0, p.stderr
    m = re.search(rb"accepted as seq (\d+)", p.stderr)
    assert m, p.stderr
    seq = int(m.group(1))

    p = logger(build, "--socket", sock, "--ack", "--json",
               '{"_aaas":{"seq":1},"actor":"mallory"}')
    assert p.returncode == 1, p.stderr
    assert b"rejected" in p.stderr and b"_aaas" in p.stderr, p.stderr

    wait_lines(receiver, 2, d)
    d.stop()
    got = delivered(receiver.out_dir)
    by_seq = {ln.meta["seq"]: ln for ln in got}
    assert json.loads(by_seq[seq].original) == {"actor": "bob",
                                                "action": "delete"}
    # With --ack the logger is alive until its ack: it is named.
    peer = by_seq[seq].meta["peer"]
    assert peer["exe"] == str(build.path / "aaas-logger"), peer
    assert peer["comm"] == "aaas-logger", peer
    assert len([ln for ln in got if ln.reject is not None]) == 1


def test_logger_bad_input_is_refused_before_sending(build):
    p = logger(build, "--json", "[1, 2]", "--socket", "/nonexistent")
    assert p.returncode == 2 and b"JSON object" in p.stderr, p.stderr
    p = logger(build, "--json", '{"a":', "--socket", "/nonexistent")
    assert p.returncode == 2 and b"parse error" in p.stderr, p.stderr
    p = logger(build, "--field", "novalue", "x")
    assert p.returncode == 2 and b"key=value" in p.stderr, p.stderr
    p = logger(build, "--socket", "/nonexistent", "hello")
    assert p.returncode == 3 and b"/nonexistent" in p.stderr, p.stderr


def silent_server(path, hello_reply):
    """A socket that takes the hello and then never acknowledges."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(4)
    held = []

    def run():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)
            if hello_reply is not None:
                c.sendall(hello_reply)

    threading.Thread(target=run, daemon=True).start()
    return srv, held


@pytest.mark.parametrize("hello_reply", [
    b'{"_aaas_hello":{"ack":true,"version":1}}\n', None])
def test_logger_ack_times_out(build, short_dir, hello_reply):
    srv, held = silent_server(short_dir / "fake.sock", hello_reply)
    try:
        t0 = time.monotonic()
        p = logger(build, "--socket", str(short_dir / "fake.sock"), "--ack",
                   "--timeout", "1.5", "x")
        took = time.monotonic() - t0
    finally:
        srv.close()
        for c in held:
            c.close()
    assert p.returncode == 3, p.stderr
    assert b"within 1.5 s" in p.stderr, p.stderr
    assert 1.4 < took < 20, took


def man_example(start, end_line):
    """A literal block of aaas-logger(1), as a reader would copy it."""
    page = Path(__file__).resolve().parents[2] / "man" / "aaas-logger.1"
    text = subprocess.run(["mandoc", "-T", "ascii", str(page)],
                          capture_output=True, check=True).stdout
    text = re.sub(rb".\x08", b"", text).decode()
    lines = text.splitlines()
    i = next(n for n, ln in enumerate(lines) if ln.strip() == start)
    indent = len(lines[i]) - len(lines[i].lstrip())
    out = []
    for ln in lines[i:]:
        out.append(ln[indent:])
        if ln.strip() == end_line and len(ln) - len(ln.lstrip()) == indent:
            break
    return "\n".join(out) + "\n"


@pytest.mark.skipif(not shutil.which("mandoc"), reason="needs mandoc")
def test_man_page_examples_work(build, make_daemon, setup, receiver,
                                tmp_path):
    setup.config(receiver.url, inputs=[])
    d = make_daemon().start()
    sock = str(setup.socket_path)
    src = man_example("#include <stdio.h>", "}").replace(
        "/run/auditd.sock", sock)
    (tmp_path / "ex.c").write_text(src)
    subprocess.run(["cc", "-o", str(tmp_path / "ex"), str(tmp_path / "ex.c")],
                   check=True)
    assert subprocess.run([str(tmp_path / "ex")], timeout=30).returncode == 0
    if shutil.which("socat"):
        sh = man_example("printf '%s\\n' '{\"_aaas_hello\":{\"ack\":true}}' \\",
                         "socat -t 10 - UNIX-CONNECT:/run/auditd.sock")
        out = subprocess.run(["sh", "-c", sh.replace("/run/auditd.sock",
                                                     sock)],
                             capture_output=True, timeout=30).stdout
        assert b'"status":"accepted"' in out, out
    wait_lines(receiver, 2 if shutil.which("socat") else 1, d)
    d.stop()
    actors = sorted(json.loads(ln.original)["actor"]
                    for ln in events(delivered(receiver.out_dir)))
    assert actors == (["bob", "carol"] if shutil.which("socat")
                      else ["carol"])
