# SPDX-License-Identifier: MIT
"""The daemon as a service: sd_notify messages in order, reload on SIGHUP
during traffic, status and metrics over the control socket, and a log
that never shows the secret key."""

import json
import math
import os
import re
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

from conftest import (ACCESS_KEY, REGION, SECRET_KEY, STREAM,
                      FirehoseReceiver, assert_exactly_once, check_meta,
                      daemon_environment, delivered, duplicates, events,
                      jline, rejects, wait_for, wait_lines, write_lines)

STREAM2 = "audit-events-2"


@pytest.fixture
def receiver2(tmp_path):
    rx = FirehoseReceiver(tmp_path / "out", streams=[STREAM, STREAM2],
                          region=REGION, access_key=ACCESS_KEY,
                          secret_key=SECRET_KEY)
    rx.start()
    yield rx
    rx.stop()


def aaasctl(build, setup, *args, check=True):
    p = subprocess.run([str(build.path / "aaasctl"), "-s",
                        str(setup.control_path)] + list(args),
                       capture_output=True, text=True, timeout=30,
                       env=build.env())
    if check:
        assert p.returncode == 0, "aaasctl %s: %s%s" % (args, p.stdout,
                                                         p.stderr)
    return p


def send_socket(path, lines):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    s.sendall(b"".join(ln + b"\n" for ln in lines))
    s.close()


def notices_after(notices, start, what):
    for i in range(start, len(notices)):
        if notices[i] == what or notices[i].startswith(what):
            return i
    return -1


# -- sd_notify -----------------------------------------------------------------

def test_notify_sequence(build, setup, receiver, make_daemon):
    """READY, STATUS, WATCHDOG, RELOADING+MONOTONIC_USEC, READY, STOPPING."""
    setup.config(receiver.url, inputs=[])
    env = daemon_environment(setup.home)
    env["WATCHDOG_USEC"] = "1000000"
    d = make_daemon(env).start()

    send_socket(setup.socket_path, [jline(n=1), jline(n=2), b"not json"])
    wait_lines(receiver, 3, d)
    wait_for(lambda: d._has_notice("WATCHDOG=1"), 10, "WATCHDOG=1", d)

    d.proc.send_signal(signal.SIGHUP)

    def reloaded():
        d._drain_notify()
        at = notices_after(d.notices, 0, "RELOADING=1")
        return at >= 0 and notices_after(d.notices, at, "READY=1") > at

    wait_for(reloaded, 20, "READY=1 after RELOADING=1", d)
    d.stop()
    n = d.notices

    ready = notices_after(n, 0, "READY=1")
    status = notices_after(n, ready, "STATUS=")
    assert 0 <= ready < status, n
    assert re.match(r"^STATUS=accepted \d+, delivered \d+, rejected \d+ "
                    r"\(\d+ kept locally\), refused by the service \d+, "
                    r"backlog \d+", n[status]), n[status]
    assert notices_after(n, ready, "WATCHDOG=1") > ready, n

    reloading = notices_after(n, ready, "RELOADING=1")
    assert reloading > ready, n
    mono = n[reloading + 1]
    m = re.match(r"^MONOTONIC_USEC=(\d+)$", mono)
    assert m, "RELOADING=1 without MONOTONIC_USEC: %r" % n[reloading:]
    # CLOCK_MONOTONIC of this machine, so it lies before now.
    assert int(m.group(1)) <= time.clock_gettime_ns(
        time.CLOCK_MONOTONIC) // 1000
    ready2 = notices_after(n, reloading, "READY=1")
    assert ready2 > reloading, n

    # The status sent once the reload is done counts what was delivered.
    after = [x for x in n[ready2:] if x.startswith("STATUS=accepted")]
    assert after and after[0].startswith(
        "STATUS=accepted 3, delivered 3, rejected 1 (0 kept locally), "
        "refused by the service 0, backlog 0"), n[ready2:]

    stopping = notices_after(n, ready2, "STOPPING=1")
    assert stopping > ready2, n
    assert notices_after(n, stopping + 1, "READY=1") < 0, n


# -- reload --------------------------------------------------------------------

class Writer(threading.Thread):
    """Appends numbered lines to a file and the socket until stopped."""

    def __init__(self, path, sock, tag):
        super().__init__(daemon=True)
        self.path = path
        self.sock = sock
        self.tag = tag
        self.sent = []
        self.halt = threading.Event()
        self.error = None

    def run(self):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(self.sock))
            i = 0
            while not self.halt.is_set():
                f = jline(src="file", tag=self.tag, i=i)
                k = jline(src="sock", tag=self.tag, i=i)
                write_lines(self.path, [f], mode="ab")
                s.sendall(k + b"\n")
                self.sent += [f, k]
                i += 1
                time.sleep(0.002)
            s.close()
        except Exception as e:  # reported by the test
            self.error = e


def reload_and_wait(d, what):
    before = d.stderr().count(what)
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.stderr().count(what) > before, 30,
             "%r in the log after SIGHUP" % what, d)


def test_reload_during_traffic(build, setup, receiver2, make_daemon):
    a = setup.logs / "a.log"
    b_dir = setup.root / "more"
    b_dir.mkdir()
    b = b_dir / "b.log"
    early_b = [jline(src="b", i=i) for i in range(50)]
    write_lines(b, early_b)

    setup.config(receiver2.url, inputs=[("app", {"path": setup.logs /
                                                 "*.log"})])
    d = make_daemon().start()
    w = Writer(a, setup.socket_path, "t")
    w.start()
    time.sleep(0.5)

    # 1: a second input, another stream, other sender settings.
    setup.config(receiver2.url, inputs=[
        ("app", {"path": setup.logs / "*.log"}),
        ("more", {"path": b_dir / "*.log"})],
        stream=STREAM2, firehose_extra="max_in_flight = 2  timeout = 9000")
    reload_and_wait(d, "reload: '%s' applied" % setup.config_path)
    time.sleep(0.5)

    # 2: an invalid file is refused with its line; the old one runs on.
    good = setup.config_path.read_text()
    bad = good.replace('region = "us-east-1"', 'region = "moon-1"')
    assert bad != good
    setup.config_path.write_text(bad)
    bad_line = next(i for i, ln in enumerate(bad.splitlines(), 1)
                    if "moon-1" in ln)
    reload_and_wait(d, "not applied, the running one stays in force")
    assert "%s:%d: firehose.region: 'moon-1'" % (setup.config_path,
                                                  bad_line) in d.stderr()
    time.sleep(0.5)

    # 3: a restart-only option is named and kept; "more" is removed.
    text = good.replace('spool { dir = ', 'spool { max_size = "2G" dir = ')
    text = re.sub(r'input "more" \{[^}]*\}\n', "", text)
    assert text != good and "more" not in text
    setup.config_path.write_text(text)
    reload_and_wait(d, "reload: '%s' applied" % setup.config_path)
    assert "reload: spool.max_size changed, it takes effect at the next " \
           "restart" in d.stderr()
    late_b = [jline(src="b-late", i=i) for i in range(20)]
    write_lines(b, late_b, mode="ab")
    time.sleep(0.5)

    w.halt.set()
    w.join(10)
    assert w.error is None, w.error
    want = w.sent + early_b
    wait_lines(receiver2, len(want), d, timeout=120)
    time.sleep(1.0)          # anything extra would arrive by now
    d.stop()

    lines = delivered(receiver2.out_dir)
    check_meta(lines)
    assert not rejects(lines)
    assert duplicates(lines) == 0, "a reload repeated events"
    assert_exactly_once(lines, want)
    names = {ln.object.name.split("-1-")[0] for ln in events(lines)}
    assert names == {STREAM, STREAM2}, names


# -- status and metrics ----------------------------------------------------------

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def parse_exposition(text):
    """A strict reader of the Prometheus text format 0.0.4.

    Returns {name: {"type": t, "help": h, "samples": {labels: value}}};
    raises AssertionError on anything the format does not allow.
    """
    assert text.endswith("\n"), "exposition does not end with a newline"
    families = {}
    current = None
    for no, line in enumerate(text[:-1].split("\n"), 1):
        assert line, "line %d is empty" % no
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert parts[0] == "#" and len(parts) >= 3, "line %d: %r" % (
                no, line)
            kind, name = parts[1], parts[2]
            assert METRIC_NAME.fullmatch(name), "line %d: name %r" % (
                no, name)
            fam = families.setdefault(name, {"type": None, "help": None,
                                             "samples": {}})
            if kind == "HELP":
                assert fam["help"] is None, "line %d: second HELP" % no
                assert len(parts) == 4 and parts[3], "line %d: no help" % no
                fam["help"] = parts[3]
            elif kind == "TYPE":
                assert fam["type"] is None, "line %d: second TYPE" % no
                assert not fam["samples"], "line %d: TYPE after samples" % no
                assert len(parts) == 4 and parts[3] in (
                    "counter", "gauge", "summary", "histogram",
                    "untyped"), "line %d: type %r" % (no, line)
                fam["type"] = parts[3]
            current = name
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)"
                         r"( -?\d+)?", line)
        assert m, "line %d is not a sample: %r" % (no, line)
        name, labels_text, value = m.group(1), m.group(3), m.group(4)
        assert name == current, "line %d: sample of %s under %s" % (
            no, name, current)
        labels = []
        rest = labels_text or ""
        while rest:
            lm = re.match(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|'
                          r'\\[\\"n])*)"(,|$)', rest)
            assert lm, "line %d: bad labels %r" % (no, labels_text)
            labels.append((lm.group(1), lm.group(2)))
            rest = rest[lm.end():]
        keys = [k for k, _ in labels]
        assert len(keys) == len(set(keys)), "line %d: label twice" % no
        if value in ("+Inf", "-Inf", "NaN"):
            v = float(value.replace("Inf", "inf").replace("NaN", "nan"))
        else:
            assert re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", value), \
                "line %d: value %r" % (no, value)
            v = float(value)
        fam = families[name]
        key = tuple(sorted(labels))
        assert key not in fam["samples"], "line %d: series twice" % no
        if fam["type"] == "counter":
            assert name.endswith("_total"), "counter %s lacks _total" % name
            assert not math.isnan(v) and v >= 0, "line %d" % no
        fam["samples"][key] = v
    for name, fam in families.items():
        assert fam["type"] and fam["help"], "%s lacks TYPE or HELP" % name
    return families


def sample(fams, name, **labels):
    return fams[name]["samples"][tuple(sorted(labels.items()))]


def test_status_and_metrics(build, setup, receiver, make_daemon):
    log = setup.logs / "app.log"
    file_lines = [jline(src="file", i=i) for i in range(7)]
    write_lines(log, file_lines + [b"{broken"])
    setup.config(receiver.url)
    d = make_daemon().start()
    send_socket(setup.socket_path, [jline(src="sock", i=i) for i in
                                    range(5)])
    wait_lines(receiver, 13, d)

    st = os.stat(setup.control_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660

    def metrics():
        return parse_exposition(aaasctl(build, setup, "metrics").stdout)

    # Acknowledgement and the delivered counter follow the last answer.
    wait_for(lambda: sample(metrics(), "aaas_sink_delivered_events_total",
                            stream=STREAM) == 13, 20, "13 delivered", d)
    fams = metrics()
    assert sample(fams, "aaas_events_accepted_total") == 13
    assert sample(fams, "aaas_events_appended_total") == 13
    assert sample(fams, "aaas_events_rejected_total") == 1
    assert sample(fams, "aaas_input_events_total", input="app") == 8
    assert sample(fams, "aaas_input_rejected_total", input="app") == 1
    assert sample(fams, "aaas_input_events_total", input="socket") == 5
    assert sample(fams, "aaas_spool_backlog_events") == 0
    assert sample(fams, "aaas_files_followed") == 1
    assert sample(fams, "aaas_socket_connections_total") == 1
    assert sample(fams, "aaas_sink_calls_total", stream=STREAM) >= 1
    assert fams["aaas_spool_bytes"]["type"] == "gauge"
    assert fams["aaas_sink_calls_total"]["type"] == "counter"
    (labels, one), = fams["aaas_build_info"]["samples"].items()
    assert one == 1 and dict(labels)["version"]

    j = json.loads(aaasctl(build, setup, "status", "--json").stdout)
    assert j["events"] == {"appended": 13, "accepted": 13, "rejected": 1}
    assert j["sink"]["stream"] == STREAM and j["sink"]["delivered"] == 13
    assert {i["name"]: i["events"] for i in j["inputs"]} == {"app": 8,
                                                            "socket": 5}
    assert j["spool"]["backlog"] == 0 and j["spool"]["full"] is False

    text = aaasctl(build, setup, "status").stdout
    assert "13 accepted, 1 rejected" in text
    assert "stream 'audit-events' in us-east-1: 13 delivered" in text
    assert "input:   app: 8 events, 1 rejected" in text

    p = aaasctl(build, setup, "frobnicate", check=False)
    assert p.returncode == 2 and "unknown command 'frobnicate'" in p.stderr
    d.stop()
    assert not setup.control_path.exists(), "control socket left behind"
    p = aaasctl(build, setup, "status", check=False)
    assert p.returncode == 1 and "cannot connect" in p.stderr


def test_exposition_reader_is_strict():
    good = ("# HELP a_total A.\n# TYPE a_total counter\n"
            'a_total{x="1"} 3\n')
    assert sample(parse_exposition(good), "a_total", x="1") == 3
    for bad in (good.replace("a_total{", "a{"),            # wrong family
                good.replace(" 3\n", " three\n"),
                good.replace("# TYPE a_total counter\n", ""),
                good + 'a_total{x="1"} 4\n',              # series twice
                good.replace('x="1"', 'x=1'),
                good[:-1],
                good.replace("counter", "count")):
        with pytest.raises(AssertionError):
            parse_exposition(bad)


# -- logging -------------------------------------------------------------------

def test_log_never_shows_the_secret(build, setup, receiver, make_daemon):
    """Through start, refused calls, reloads and stop, at debug level."""
    setup.config(receiver.url, inputs=[], log_level="debug")
    d = make_daemon().start()
    receiver.control(fail_next_calls=2, status=403,
                     type="UnrecognizedClientException",
                     message="The security token included in the request "
                             "is invalid.")
    send_socket(setup.socket_path, [jline(i=i) for i in range(4)])
    wait_lines(receiver, 4, d)
    reload_and_wait(d, "reload: '%s' applied" % setup.config_path)
    st = aaasctl(build, setup, "status", "--json").stdout
    mt = aaasctl(build, setup, "metrics").stdout
    text = d.stop()

    assert "refused a call: HTTP 403" in text, text
    for where, blob in (("log", text), ("status", st), ("metrics", mt)):
        assert SECRET_KEY not in blob, "secret key in the %s" % where
        # Nor a recognisable piece of it.
        assert SECRET_KEY.split("/")[2] not in blob, where
