# SPDX-License-Identifier: MIT
"""A flood into a full spool: writers wait in the kernel, nothing is lost."""

import socket
import threading
import time

from conftest import ACCESS_KEY, REGION, SECRET_KEY, STREAM, \
    FirehoseReceiver, assert_exactly_once, check_meta, delivered, \
    duplicates, jline, wait_for, wait_lines

WRITERS = 8
PER_WRITER = 2500       # 8 x 2500 x ~500 bytes: ~10 MB into a 1 MB spool


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (field, pid))


def event(w, i):
    return jline(w=w, i=i, pad="b" * 460)


def test_flood_while_spool_is_full(make_daemon, setup, tmp_path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    # The receiver is down: nothing leaves the spool until it comes up.
    setup.config("http://127.0.0.1:%d" % port, inputs=[], log_level="info",
                 spool_extra='max_size = "1M"  segment_size = "256k"')
    d = make_daemon().start()
    done = [0] * WRITERS
    errors = []

    def writer(w):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(300)
            s.connect(str(setup.socket_path))
            for i in range(PER_WRITER):
                s.sendall(event(w, i) + b"\n")
                done[w] = i + 1
            s.close()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    threads = [threading.Thread(target=writer, args=(w,), daemon=True)
               for w in range(WRITERS)]
    for t in threads:
        t.start()
    wait_for(lambda: "reached its size limit, pausing inputs" in d.stderr(),
             60, "the spool to fill", d)
    # Writers are held: their counts stop moving well short of the end.
    before = list(done)
    time.sleep(2)
    assert done == before, (before, done)
    assert sum(done) < WRITERS * PER_WRITER
    rss_full = vm_kib(d.proc.pid, "VmRSS")
    time.sleep(2)
    assert vm_kib(d.proc.pid, "VmRSS") <= rss_full + 1024
    assert vm_kib(d.proc.pid, "VmHWM") < 64 * 1024

    rx = FirehoseReceiver(tmp_path / "late-out", streams=[STREAM],
                          region=REGION, access_key=ACCESS_KEY,
                          secret_key=SECRET_KEY, port=port).start()
    try:
        for t in threads:
            t.join(300)
        assert not errors, errors
        assert done == [PER_WRITER] * WRITERS
        wait_lines(rx, WRITERS * PER_WRITER, d, 300)
        d.stop()
        got = delivered(rx.out_dir)
    finally:
        rx.stop()
    check_meta(got)
    assert_exactly_once(got, [event(w, i) for w in range(WRITERS)
                              for i in range(PER_WRITER)])
    assert duplicates(got) == 0
    assert "has room again, resuming inputs" in d.all_stderr()
