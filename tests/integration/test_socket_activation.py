# SPDX-License-Identifier: MIT
"""The socket file: systemd activation across restarts, and without it
mode, group, a stale file and a live daemon already listening."""

import grp
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from conftest import READY_TIMEOUT, check_meta, daemon_environment, \
    delivered, events, jline, sanitizer_report, wait_for, wait_lines

HELLO = b'{"_aaas_hello":{"ack":true}}\n'

# Runs aaasd again and again on the socket systemd-socket-activate passed
# (fd 3), the way systemd restarts a service while holding its socket.
# SIGUSR1 restarts the daemon; SIGTERM stops it and exits.
SUPERVISOR = r"""
import os, signal, socket, subprocess, sys
aaasd, conf, notify_path = sys.argv[1:4]
restart = []
stop = []
signal.signal(signal.SIGUSR1, lambda *a: restart.append(1))
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
n = 0
while True:
    n += 1
    path = "%s.%d" % (notify_path, n)
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ns.settimeout(0.2)
    env = dict(os.environ, NOTIFY_SOCKET=path, LISTEN_FDS="1")
    env.pop("LISTEN_FDNAMES", None)
    # LISTEN_PID must name aaasd itself: set it in the shell that execs.
    p = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh",
                          aaasd, "-c", conf], env=env, pass_fds=(3,),
                         stderr=open("%s.stderr.%d" % (notify_path, n),
                                     "wb"))
    ready = False
    while p.poll() is None and not (restart or stop):
        try:
            msg = ns.recv(4096).decode()
        except socket.timeout:
            continue
        if "READY=1" in msg.split("\n") and not ready:
            ready = True
            print("ready %d" % n, flush=True)
    p.send_signal(signal.SIGTERM)
    rc = p.wait()
    ns.close()
    os.unlink(path)
    print("exit %d %d" % (n, rc), flush=True)
    if stop or rc != 0:
        sys.exit(rc)
    restart.clear()
"""


class AckWriter(threading.Thread):
    """Sends numbered events in acknowledged batches, re-sending what was
    not acknowledged on a fresh connection."""

    def __init__(self, path, w, batch=20):
        super().__init__(daemon=True)
        self.path, self.w, self.batch = path, w, batch
        self.next = 0
        self.acked = set()
        self.resent = set()
        self.refused_connects = 0
        self.stopping = False
        self.error = None

    def event(self, i):
        return jline(w=self.w, i=i, pad="r" * 200)

    def send_batch(self, items):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        try:
            s.connect(self.path)
        except ConnectionRefusedError:
            self.refused_connects += 1
            return []
        got = []
        try:
            s.sendall(HELLO + b"".join(self.event(i) + b"\n"
                                       for i in items))
            buf = b""
            while len(got) < len(items):
                data = s.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    ln, buf = buf.split(b"\n", 1)
                    rep = json.loads(ln)
                    if "_aaas_ack" in rep:
                        assert rep["_aaas_ack"]["status"] == "accepted"
                        got.append(items[len(got)])
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            s.close()
        return got

    def run(self):
        try:
            todo = []
            while not self.stopping or todo:
                if not todo:
                    todo = list(range(self.next, self.next + self.batch))
                    self.next += self.batch
                got = self.send_batch(todo)
                self.acked.update(got)
                rest = todo[len(got):]
                if rest:
                    self.resent.update(rest)
                    time.sleep(0.05)
                else:
                    time.sleep(0.01)
                todo = rest
        except Exception as e:  # noqa: BLE001 (checked by the test)
            self.error = e


def test_restart_under_socket_activation_loses_nothing(build, setup,
                                                       receiver):
    build.require_daemon()
    sock = str(setup.socket_path)
    setup.config(receiver.url, inputs=[], log_level="info")
    notify = str(setup.short / "n")
    env = build.env(daemon_environment(setup.home))
    # systemd-socket-activate hands its children only what -E names.
    setenv = []
    for k, v in sorted(env.items()):
        if k.startswith(("AWS_", "ASAN_", "UBSAN_")) or k in (
                "HOME", "PATH", "NO_PROXY", "no_proxy"):
            setenv += ["-E", "%s=%s" % (k, v)]
    act = subprocess.Popen(
        ["systemd-socket-activate", "-l", sock] + setenv +
        [sys.executable, "-c", SUPERVISOR, str(build.aaasd),
         str(setup.config_path), notify],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    writers = []
    try:
        wait_for(lambda: os.path.exists(sock), 10, "the activation socket")
        writers = [AckWriter(sock, w) for w in range(4)]
        for t in writers:
            t.start()
        # The first connection makes systemd-socket-activate start it.
        assert act.stdout.readline().split()[0] == b"ready"
        for n in range(3):
            time.sleep(1.5)
            act.send_signal(signal.SIGUSR1)
            assert act.stdout.readline().split()[:3] == \
                [b"exit", str(n + 1).encode(), b"0"]
            line = act.stdout.readline()
            assert line.split()[0] == b"ready", line
        time.sleep(1.0)
        for t in writers:
            t.stopping = True
        for t in writers:
            t.join(120)
            assert not t.is_alive() and t.error is None, t.error
        total = sum(len(t.acked) for t in writers)
        wait_lines(receiver, total, None, 120)
        act.send_signal(signal.SIGTERM)
        assert act.wait(60) == 0, act.stderr.read()
    finally:
        if act.poll() is None:
            act.kill()
            act.wait()
    logs = ""
    for n in range(1, 5):
        try:
            logs += open("%s.stderr.%d" % (notify, n)).read()
        except OSError:
            pass
    assert not sanitizer_report(logs), logs[-3000:]
    # The socket never went away: no writer was ever refused.
    assert sum(t.refused_connects for t in writers) == 0
    got = delivered(receiver.out_dir)
    check_meta(got)
    seen = {}
    for ln in events(got):
        o = json.loads(ln.original)
        seen[(o["w"], o["i"])] = seen.get((o["w"], o["i"]), 0) + 1
    for t in writers:
        for i in t.acked:
            assert (t.w, i) in seen, "acked event %d/%d lost" % (t.w, i)
        # Only events re-sent after a missing ack may arrive twice.
        for (w, i), n in seen.items():
            if w == t.w and n > 1:
                assert i in t.resent, (w, i, n)
    assert len(writers) == 4 and min(len(t.acked) for t in writers) > 100


def test_socket_mode_and_group(make_daemon, setup, receiver):
    group = grp.getgrgid(os.getgroups()[-1] if os.getgroups() else 0)
    for g in grp.getgrall():
        if g.gr_gid != os.getgid():
            group = g
            break
    setup.config(receiver.url, inputs=[],
                 socket_extra='mode = "0620"  group = "%s"' % group.gr_name)
    d = make_daemon().start()
    st = os.stat(setup.socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o620
    assert st.st_gid == group.gr_gid
    d.stop()
    # Our own socket file goes with us.
    assert not os.path.exists(setup.socket_path)


def test_stale_socket_file_is_replaced(make_daemon, setup, receiver):
    old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old.bind(str(setup.socket_path))
    old.close()          # the file stays, nobody listens: a dead daemon's
    setup.config(receiver.url, inputs=[])
    d = make_daemon().start()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(setup.socket_path))
    s.sendall(jline(after="stale") + b"\n")
    s.close()
    wait_lines(receiver, 1, d)
    d.stop()


def test_refuses_to_start_when_another_listens(make_daemon, setup,
                                               receiver):
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(setup.socket_path))
    live.listen(1)
    try:
        setup.config(receiver.url, inputs=[])
        d = make_daemon().start(wait_ready=False)
        rc = d.proc.wait(READY_TIMEOUT)
        text = d.stderr()
        d.cleanup()
        assert rc != 0, text
        assert "another process is listening on '%s', exiting" \
            % setup.socket_path in text, text
        # The live socket was left alone.
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(str(setup.socket_path))
        c.close()
    finally:
        live.close()
