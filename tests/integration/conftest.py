# SPDX-License-Identifier: MIT
"""Fixtures for driving aaasd against the local Firehose receiver.

Every daemon test runs once per build directory named in AAAS_BUILDS
(':'-separated; default: the repository root), so one pytest run covers
the normal and the sanitizer build.  Helpers here read what the receiver
stored and take the daemon's `_aaas` member back off each line.
"""

import base64
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from firehose_receiver import FirehoseReceiver  # noqa: E402

REPO_ROOT = HERE.parent.parent
SHARED_DIR = Path(os.environ.get("AAAS_SHARED_DIR",
                                 REPO_ROOT.parent / "shared"))

STREAM = "audit-events"
REGION = "us-east-1"
ACCESS_KEY = "AKIAAAASTESTKEY00001"
SECRET_KEY = "aaas/integration+test/secret/key/0001"

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "LeakSanitizer")
AGENT_RE = re.compile(r"^[0-9a-f]{32}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

# Sanitizer builds run several times slower; every deadline scales.
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


# -- builds ------------------------------------------------------------------

class Build:
    def __init__(self, path, ident, explicit):
        self.path = Path(path).resolve()
        self.id = ident
        self.explicit = explicit
        self.aaasd = self.path / "aaasd"
        self.sanitized = self._detect_sanitizer()

    def _detect_sanitizer(self):
        if "san" in self.path.name:
            return True
        try:
            with open(self.aaasd, "rb") as f:
                blob = f.read()
        except OSError:
            return False
        return b"__asan_init" in blob or b"__ubsan_handle" in blob

    def unit_tests(self):
        d = self.path / "tests" / "unit"
        if not d.is_dir():
            return []
        return sorted(p for p in d.glob("test_*")
                      if p.is_file() and os.access(p, os.X_OK)
                      and p.suffix == "")

    def require_daemon(self):
        if not os.access(self.aaasd, os.X_OK):
            msg = "%s has no aaasd binary" % self.path
            if self.explicit:
                pytest.fail(msg)
            pytest.skip(msg + " (build it, or set AAAS_BUILDS)")

    def env(self, base=None):
        env = dict(base if base is not None else os.environ)
        if self.sanitized:
            env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
            env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
        return env


def _builds():
    raw = os.environ.get("AAAS_BUILDS")
    explicit = bool(raw)
    dirs = [d for d in (raw or str(REPO_ROOT)).split(":") if d]
    out = []
    seen = collections.Counter()
    for d in dirs:
        p = Path(d).resolve()
        ident = "build" if p == REPO_ROOT else p.name
        seen[ident] += 1
        if seen[ident] > 1:
            ident = "%s%d" % (ident, seen[ident])
        out.append(Build(p, ident, explicit))
    return out


BUILDS = _builds()


def pytest_generate_tests(metafunc):
    if "build" in metafunc.fixturenames:
        metafunc.parametrize("build", BUILDS, ids=[b.id for b in BUILDS],
                             scope="function")


def sanitizer_report(text):
    return [m for m in SANITIZER_MARKERS if m in text]


# -- waiting -------------------------------------------------------------------

def wait_for(predicate, timeout, what, daemon=None, interval=0.1):
    """Poll predicate until true; fail naming what, with the daemon's log."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if daemon is not None and daemon.proc is not None \
                and daemon.proc.poll() is not None:
            pytest.fail("aaasd exited with %s while waiting for %s\n%s"
                        % (daemon.proc.returncode, what, daemon.tail()))
        if time.monotonic() > deadline:
            extra = ("\n--- aaasd stderr (tail) ---\n%s" % daemon.tail()
                     if daemon is not None else "")
            pytest.fail("timed out after %.0fs waiting for %s%s"
                        % (timeout, what, extra))
        time.sleep(interval)


# -- environment -------------------------------------------------------------

def daemon_environment(home, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                       session_token=None):
    """An environment that holds credentials and points nothing outward."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k not in (
               "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID",
               "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID",
               "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
               "ALL_PROXY", "all_proxy")}
    env["HOME"] = str(home)
    env["AWS_ACCESS_KEY_ID"] = access_key
    env["AWS_SECRET_ACCESS_KEY"] = secret_key
    if session_token is not None:
        env["AWS_SESSION_TOKEN"] = session_token
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["AWS_CONFIG_FILE"] = str(Path(home) / "no-such-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(Path(home) / "no-such-aws-creds")
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


# -- config ------------------------------------------------------------------

def _q(s):
    return json.dumps(str(s))


class Setup:
    """The directories one daemon (and its restarts) works in."""

    def __init__(self, root, short_root):
        self.root = Path(root)
        self.state = self.root / "state"
        self.spool = self.root / "spool"
        self.logs = self.root / "logs"
        self.home = self.root / "home"
        for d in (self.state, self.spool, self.logs, self.home):
            d.mkdir(parents=True, exist_ok=True)
        # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be
        # longer, so sockets live in a short private directory.
        self.short = Path(short_root)
        self.socket_path = self.short / "auditd.sock"
        self.control_path = self.short / "control.sock"
        self.config_path = self.root / "aaas.conf"

    def config(self, endpoint, socket=True, inputs=None, log_level="debug",
               socket_extra="", firehose_extra="", stream=STREAM,
               region=REGION, top_extra="", spool_extra=""):
        if inputs is None:
            inputs = [("app", {"path": self.logs / "*.log"})]
        lines = [
            "state_dir = %s" % _q(self.state),
            "log_level = %s" % _q(log_level),
            "spool { dir = %s%s }" % (_q(self.spool),
                                      " " + spool_extra if spool_extra
                                      else ""),
        ]
        if top_extra:
            lines.append(top_extra)
        if "control {" not in top_extra:
            lines.append("control { path = %s }" % _q(self.control_path))
        if socket:
            lines.append("socket { path = %s %s }"
                         % (_q(self.socket_path), socket_extra))
        else:
            lines.append("socket { enabled = false }")
        for name, opts in inputs:
            o = {"format": "json", "start_at": "beginning"}
            o.update(opts)
            body = "  ".join(
                "%s = %s" % (k, v if isinstance(v, int) else _q(v))
                for k, v in o.items())
            lines.append("input %s { %s }" % (_q(name), body))
        lines.append("firehose { stream = %s  region = %s  endpoint = %s  "
                     "retry_initial = 50  retry_max = 1000 %s }"
                     % (_q(stream), _q(region), _q(endpoint),
                        firehose_extra))
        text = "\n".join(lines) + "\n"
        self.config_path.write_text(text)
        return self.config_path


class Daemon:
    """One aaasd process: start, wait for READY=1, stop or kill."""

    def __init__(self, build, setup, env):
        self.build = build
        self.setup = setup
        self.env = build.env(env)
        self.proc = None
        self.runs = 0
        self.stderr_path = None
        self.notify = None
        self.notify_path = None
        self.notices = []
        self.logs = []          # stderr text of finished runs

    def start(self, wait_ready=True):
        assert self.proc is None, "daemon already running"
        self.runs += 1
        self.stderr_path = self.setup.root / ("aaasd.%d.stderr" % self.runs)
        self.notify_path = self.setup.short / ("notify.%d" % self.runs)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.setblocking(False)
        self.notices = []
        env = dict(self.env)
        env["NOTIFY_SOCKET"] = str(self.notify_path)
        with open(self.stderr_path, "wb") as err, \
                open(self.setup.root / ("aaasd.%d.stdout" % self.runs),
                     "wb") as out:
            self.proc = subprocess.Popen(
                [str(self.build.aaasd), "-c", str(self.setup.config_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                cwd=str(self.setup.root))
        if wait_ready:
            wait_for(lambda: self._has_notice("READY=1"), READY_TIMEOUT,
                     "READY=1 from sd_notify", self)
        return self

    def _drain_notify(self):
        while True:
            try:
                data = self.notify.recv(4096)
            except BlockingIOError:
                return
            self.notices.extend(data.decode("utf-8", "replace").split("\n"))

    def _has_notice(self, what):
        self._drain_notify()
        return what in self.notices

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def all_stderr(self):
        return "".join(self.logs) + (self.stderr() if self.proc else "")

    def tail(self, n=60):
        return "\n".join(self.stderr().splitlines()[-n:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _finish(self):
        self.logs.append(self.stderr())
        self.notify.close()
        try:
            os.unlink(self.notify_path)
        except OSError:
            pass
        self.proc = None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; expect STOPPING=1, exit 0 and no sanitizer report."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            rc = self.proc.returncode
            text = self.stderr()
            self._finish()
            pytest.fail("aaasd had already exited with %s\n%s" % (rc, text))
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            text = self.tail()
            self._finish()
            pytest.fail("aaasd did not exit within %.0fs of SIGTERM\n%s"
                        % (timeout, text))
        stopping = self._has_notice("STOPPING=1")
        text = self.stderr()
        self._finish()
        assert rc == 0, "aaasd exited with %s after SIGTERM\n%s" % (rc, text)
        found = sanitizer_report(text)
        assert not found, "sanitizer report %s\n%s" % (found, text)
        assert stopping, "aaasd sent no STOPPING=1 on SIGTERM\n%s" % text
        return text

    def kill(self):
        """SIGKILL: the crash case; nothing is flushed."""
        assert self.alive(), "aaasd is not running\n%s" % self.tail()
        self.proc.kill()
        self.proc.wait(10)
        text = self.stderr()
        self._finish()
        found = sanitizer_report(text)
        assert not found, "sanitizer report %s\n%s" % (found, text)
        return text

    def cleanup(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            self._finish()


@pytest.fixture
def short_dir():
    d = tempfile.mkdtemp(prefix="aaas-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def setup(tmp_path, short_dir):
    return Setup(tmp_path / "run", short_dir)


@pytest.fixture
def receiver(tmp_path):
    rx = FirehoseReceiver(tmp_path / "out", streams=[STREAM], region=REGION,
                          access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    rx.start()
    yield rx
    rx.stop()


@pytest.fixture
def make_daemon(build, setup):
    """Factory: make_daemon(env=...) -> Daemon; all are cleaned up."""
    build.require_daemon()
    made = []

    def make(env=None):
        d = Daemon(build, setup, env or daemon_environment(setup.home))
        made.append(d)
        return d

    yield make
    problems = []
    for d in made:
        if d.proc is not None:
            alive = d.alive()
            d.cleanup()
            if alive:
                problems.append("a daemon was left running by the test")
        text = "".join(d.logs)
        found = sanitizer_report(text)
        if found:
            problems.append("sanitizer report %s:\n%s" % (found, text[-4000:]))
    if problems:
        pytest.fail("\n".join(problems))


# -- delivered data ----------------------------------------------------------

class Line:
    """One delivered line split into the writer's bytes and `_aaas`."""

    __slots__ = ("raw", "original", "meta", "object")

    def __init__(self, raw, original, meta, obj):
        self.raw = raw
        self.original = original
        self.meta = meta
        self.object = obj

    @property
    def reject(self):
        if self.original.startswith(b'{"_aaas_reject":'):
            return json.loads(self.original)["_aaas_reject"]
        return None

    @property
    def seal(self):
        return self.original.startswith(b'{"_aaas_seal":')

    @property
    def key(self):
        return (self.meta["agent"], self.meta["seq"])

    def reject_raw(self):
        """The rejected input's bytes, from raw or raw_base64."""
        r = self.reject
        if "raw_base64" in r:
            return base64.b64decode(r["raw_base64"])
        return r["raw"].encode("utf-8")


_DECODER = json.JSONDecoder()


def strip_aaas(raw):
    """(original bytes, _aaas dict) of one delivered line without '\\n'.

    The daemon appends its member last, so the last `"_aaas":` is it; the
    value must run up to the object's closing brace at the end of the line,
    which proves the match is the top-level member and not text inside it.
    """
    at = raw.rfind(b'"_aaas":')
    assert at > 0, "no _aaas member in %r" % raw[:200]
    tail = raw[at + 8:].decode("utf-8")
    meta, end = _DECODER.raw_decode(tail)
    assert tail[end:] == "}", "_aaas is not the last member: %r" % raw[-300:]
    assert isinstance(meta, dict), "_aaas is not an object: %r" % raw[-300:]
    before = raw[at - 1:at]
    if before == b",":
        original = raw[:at - 1] + b"}"
    else:
        assert at == 1 and before == b"{", \
            "_aaas not preceded by ',' or the opening brace: %r" % raw[:300]
        original = b"{}"
    return original, meta


def object_files(out_dir):
    out = []
    for dirpath, dirnames, filenames in os.walk(out_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith("."):
                out.append(Path(dirpath) / f)
    return out


OBJECT_NAME_RE = re.compile(
    r"^(?P<stream>.+)-1-(?P<y>\d{4})-(?P<m>\d\d)-(?P<d>\d\d)-(?P<h>\d\d)"
    r"-\d\d-\d\d-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}"
    r"-[0-9a-f]{12}$")


def delivered(out_dir):
    """Every line stored under out_dir, as Line objects."""
    lines = []
    for path in object_files(out_dir):
        data = path.read_bytes()
        assert data.endswith(b"\n"), \
            "object %s does not end with a newline" % path
        for raw in data[:-1].split(b"\n"):
            original, meta = strip_aaas(raw)
            lines.append(Line(raw, original, meta, path))
    return lines


def check_meta(lines):
    """The _aaas invariants every delivered line must hold."""
    by_key = {}
    for ln in lines:
        m = ln.meta
        assert AGENT_RE.match(str(m.get("agent"))), m
        assert isinstance(m.get("seq"), int) and not isinstance(
            m["seq"], bool) and m["seq"] >= 0, m
        assert TIME_RE.match(str(m.get("time"))), m
        if ln.seal:
            continue
        assert m.get("source") in ("socket", "file"), m
        if m["source"] == "file":
            assert isinstance(m.get("input"), str), m
            assert isinstance(m.get("path"), str), m
        else:
            peer = m.get("peer")
            assert isinstance(peer, dict), m
            for k in ("pid", "uid", "gid"):
                assert isinstance(peer.get(k), int), m
        prev = by_key.setdefault(ln.key, ln.raw)
        assert prev == ln.raw, (
            "seq %s of agent %s was used for two different lines:\n%r\n%r"
            % (ln.key[1], ln.key[0], prev[:300], ln.raw[:300]))


def events(lines):
    return [ln for ln in lines if not ln.seal and ln.reject is None]


def rejects(lines):
    return [ln for ln in lines if not ln.seal and ln.reject is not None]


def duplicates(lines):
    """How many extra copies of (agent, seq) keys were delivered."""
    groups = collections.defaultdict(list)
    for ln in lines:
        if not ln.seal:
            groups[ln.key].append(ln.raw)
    extra = 0
    for raws in groups.values():
        extra += len(raws) - 1
    return extra


def assert_exactly_once(lines, expected):
    """expected: iterable of original bytes; each arrives once, no others."""
    want = collections.Counter(expected)
    got = collections.Counter(ln.original for ln in events(lines))
    missing = want - got
    extra = got - want
    assert not missing and not extra, (
        "%d expected lines missing (e.g. %r), %d unexpected or repeated "
        "(e.g. %r)" % (sum(missing.values()),
                       next(iter(missing), None),
                       sum(extra.values()), next(iter(extra), None)))


def wait_lines(receiver, n, daemon, timeout=90.0, what=None):
    """Wait until the receiver has stored at least n lines."""
    return wait_for(lambda: receiver.stats()["newlines_stored"] >= n,
                    timeout, what or "%d delivered lines (have %s)"
                    % (n, receiver.stats()["newlines_stored"]), daemon)


def possible_duplicates(text):
    """Sum of the N in the daemon's "possible duplicates" start-up lines."""
    total = 0
    for line in text.splitlines():
        if "possible duplicates" not in line:
            continue
        m = re.search(r"possible duplicates\D*?(\d+)", line) or \
            re.search(r"(\d+)\D*?possible duplicates", line)
        assert m, "no count in %r" % line
        total += int(m.group(1))
    return total


def write_lines(path, lines, mode="wb"):
    with open(path, mode) as f:
        for ln in lines:
            f.write(ln + b"\n")
        f.flush()
        os.fsync(f.fileno())


def jline(**fields):
    return json.dumps(fields, separators=(",", ":")).encode()
