# SPDX-License-Identifier: MIT
"""Each socket event names its real writer: ids, process, executable, unit."""

import json
import os
import socket
import sys

import pytest

from conftest import check_meta, delivered, events, wait_lines

# (uid, gid) pairs the children switch to; none needs to exist in passwd.
IDS = [(0, 0), (1001, 1001), (2002, 3003), (65534, 65534)]


def child_write(path, uid, gid, tag, cgroup=None):
    """Fork; the child joins cgroup, drops to uid/gid, writes, and stays
    until the returned release function is called, so that the daemon
    can look it up while it is alive."""
    r, w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            # Only our own pipes: holding another child's would keep it.
            keep = sorted((w, hold_r))
            os.closerange(3, keep[0])
            os.closerange(keep[0] + 1, keep[1])
            os.closerange(keep[1] + 1, 4096)
            if cgroup:
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            s.sendall(json.dumps({"tag": tag, "uid": uid}).encode() + b"\n")
            s.close()
            os.write(w, b"ok")
            os.read(hold_r, 1)
            os._exit(0)
        except BaseException as e:  # noqa: BLE001 (report from the child)
            os.write(w, repr(e).encode())
            os._exit(1)
    os.close(w)
    os.close(hold_r)
    msg = os.read(r, 1000)
    os.close(r)

    def release():
        os.close(hold_w)
        _, status = os.waitpid(pid, 0)
        assert status == 0 and msg == b"ok", msg

    if msg != b"ok":
        release()
    return pid, release


@pytest.fixture
def socket_dir_open(setup):
    # Children without privileges must reach the socket.
    os.chmod(setup.short, 0o755)
    return setup


def test_attribution_under_other_users(make_daemon, socket_dir_open,
                                       receiver):
    setup = socket_dir_open
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    setup.config(receiver.url, inputs=[], socket_extra='mode = "0666"')
    d = make_daemon().start()
    pids = {}
    releases = []
    for i, (uid, gid) in enumerate(IDS):
        pid, release = child_write(str(setup.socket_path), uid, gid, i)
        pids[i] = (pid, uid, gid)
        releases.append(release)
    wait_lines(receiver, len(IDS), d)
    for release in releases:
        release()
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    evs = events(got)
    assert len(evs) == len(IDS)
    exe = os.readlink("/proc/self/exe")
    comm = open("/proc/self/comm").read().strip()
    for ln in evs:
        tag = json.loads(ln.original)["tag"]
        pid, uid, gid = pids[tag]
        peer = ln.meta["peer"]
        assert (peer["pid"], peer["uid"], peer["gid"]) == (pid, uid, gid), \
            peer
        # The forked child is still this interpreter.
        assert peer["exe"] == exe and peer["comm"] == comm, peer


def make_unit_cgroup(rel):
    root = "/sys/fs/cgroup/unified"
    if not os.path.isdir(root):
        root = "/sys/fs/cgroup"
    path = os.path.join(root, rel)
    try:
        os.makedirs(path, exist_ok=False)
    except OSError as e:
        pytest.skip("cannot create a cgroup for the test: %s" % e)
    return path


def remove_cgroups(paths):
    for p in paths:
        while p and os.path.basename(p) != "unified" and \
                os.path.basename(p) != "cgroup":
            try:
                os.rmdir(p)
            except OSError:
                break
            p = os.path.dirname(p)


def test_attribution_names_systemd_units(make_daemon, socket_dir_open,
                                         receiver):
    setup = socket_dir_open
    if os.geteuid() != 0:
        pytest.skip("moving processes between cgroups needs root")
    suffix = os.path.basename(str(setup.short))
    sys_unit = "aaas-test-%s.service" % suffix
    user_unit = "app-%s.service" % suffix
    cg_sys = make_unit_cgroup("system.slice/%s" % sys_unit)
    cg_user = make_unit_cgroup(
        "user.slice/user-1001.slice/user@1001.service/app.slice/%s"
        % user_unit)
    try:
        setup.config(receiver.url, inputs=[], socket_extra='mode = "0666"')
        d = make_daemon().start()
        _, rel1 = child_write(str(setup.socket_path), 0, 0, "sys", cg_sys)
        _, rel2 = child_write(str(setup.socket_path), 1001, 1001, "user",
                              cg_user)
        wait_lines(receiver, 2, d)
        rel1()
        rel2()
        d.stop()
    finally:
        remove_cgroups([cg_sys, cg_user])
    got = {json.loads(ln.original)["tag"]: ln.meta["peer"]
           for ln in events(delivered(receiver.out_dir))}
    assert got["sys"]["unit"] == sys_unit, got
    assert "user_unit" not in got["sys"], got
    assert got["user"]["user_unit"] == user_unit, got
    assert got["user"]["unit"] == "user@1001.service", got


def test_writer_that_exits_keeps_its_ids(make_daemon, setup, receiver):
    """A writer gone before the daemon looks: ids stay, names go or match."""
    setup.config(receiver.url, inputs=[])
    d = make_daemon().start()
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_UNIX,socket.SOCK_STREAM)\n"
            "s.connect(sys.argv[1])\n"
            "s.sendall(b'{\"gone\":1}\\n')\n")
    pid = os.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-c", code,
                                  str(setup.socket_path)])
    os.waitpid(pid, 0)
    wait_lines(receiver, 1, d)
    d.stop()
    ln = delivered(receiver.out_dir)[0]
    peer = ln.meta["peer"]
    assert peer["pid"] == pid and peer["uid"] == os.getuid(), peer
    # Either the lookup won the race (and names the writer) or it lost
    # and names nothing: never another process.
    if "exe" in peer:
        assert peer["exe"] == os.path.realpath(sys.executable), peer
