# SPDX-License-Identifier: MIT
"""The auditor's queries of docs/athena.md, run by DuckDB on a real delivery.

The daemon delivers a few hundred events through the local receiver, from
the socket (writers with three different uids when the test runs as root)
and from a file, with a retry that stores duplicates, a malformed line and
a second run that dies before it seals.  The objects are laid out and
gzipped the way the delivery stream of aws/template.yaml writes them.  Each
query is taken from the document, in its DuckDB form, and its answer is
checked against what the test sent.
"""

import collections
import gzip
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import (ACCESS_KEY, REGION, REPO_ROOT, SECRET_KEY, STREAM,
                      FirehoseReceiver, delivered, jline, object_files,
                      wait_for, write_lines)

DOC = REPO_ROOT / "docs" / "athena.md"
DUCKDB = REPO_ROOT / "tests" / "duckdb"
PREFIX = "events/"
AGENT = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
RECORD = "patient-1234"

# Writers: (uid, gid) of each socket writer; only root can take others.
AS_ROOT = os.geteuid() == 0
UIDS = (0, 1001, 1002) if AS_ROOT else (os.geteuid(),)

WRITER = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(60)
s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read())
s.close()
"""


# -- the document ------------------------------------------------------------

BLOCK_RE = re.compile(
    r"<!-- (athena|duckdb): ([a-z_]+) -->\s*```sql\n(.*?)```", re.S)


def doc_blocks():
    """{(engine, name): sql} of every marked SQL block in docs/athena.md."""
    out = {}
    for engine, name, sql in BLOCK_RE.findall(DOC.read_text()):
        assert (engine, name) not in out, "two %s blocks named %s" % (
            engine, name)
        out[(engine, name)] = sql.strip()
    return out


def duckdb(bucket, names, params=()):
    """Runs the document's DuckDB setup and then query `names[-1]`."""
    node = shutil.which("node")
    if not node or not (DUCKDB / "node_modules" / "@duckdb").is_dir():
        pytest.fail("DuckDB is not installed: run scripts/deps")
    blocks = doc_blocks()
    job = {"setup": [blocks[("duckdb", n)] for n in names[:-1]],
           "query": blocks[("duckdb", names[-1])], "params": list(params)}
    p = subprocess.run([node, str(DUCKDB / "query.js")], cwd=str(bucket),
                       input=json.dumps(job).encode(), capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout)


def query(bucket, name, params=()):
    return duckdb(bucket, ["settings", "table", name], params)


# -- the delivery ------------------------------------------------------------

def login(actor, failed, i, via):
    return jline(action="login", actor=actor,
                 outcome="failure" if failed else "success",
                 src_ip="192.0.2.%d" % (i % 200 + 1), via=via, n=i)


def view(actor, record, i):
    return jline(action="record.view", actor=actor, record_id=record, n=i)


def socket_batches():
    """{uid: [lines]} for the socket writers of the sealed run."""
    out = {}
    for k, uid in enumerate(UIDS):
        lines = []
        for i in range(90):
            actor = "user%d-%d" % (k, i % 3)
            if i % 3 == 0:
                lines.append(login(actor, i % 2 == 0, i, "sso"))
            elif i % 5 == 1:
                lines.append(view(actor, RECORD, i))
            else:
                lines.append(view(actor, "patient-%d" % (i % 7), i))
        out[uid] = lines
    return out


def file_lines():
    lines = []
    for i in range(100):
        lines.append(login("ssh%d" % (i % 4), i % 4 == 0, i, "sshd"))
    return lines


MALFORMED = [b'{"action":"login","actor":"mallory"', b"not json at all"]
LATE = [view("late%d" % (i % 2), RECORD if i % 3 == 0 else "patient-9", i)
        for i in range(30)]


def send_socket(setup, uid, lines):
    kw = {}
    if uid != os.geteuid():
        kw = {"user": uid, "group": uid}
    subprocess.run([sys.executable, "-c", WRITER, str(setup.socket_path)],
                   input=b"".join(ln + b"\n" for ln in lines), check=True,
                   timeout=60, **kw)


def keygen(build, path):
    subprocess.run([str(build.path / "aaasctl"), "keygen", "-f", str(path)],
                   capture_output=True, check=True)


def chained_events(out):
    return {ln.original for ln in delivered(out)
            if not ln.seal and ln.reject is None}


def make_delivery(build, make_daemon, setup, out):
    rx = FirehoseReceiver(out, streams=[STREAM], region=REGION,
                          access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                          prefix=PREFIX)
    rx.start()
    try:
        key = setup.root / "signing.key"
        keygen(build, key)
        # Writers with other uids must reach the socket in its directory.
        os.chmod(setup.short, 0o755)
        sealed = 'signing { key = "%s" seal_every = 40 seal_interval = 200 }' \
            % key
        setup.config(rx.url, log_level="info", socket_extra='mode = "0666"',
                     top_extra='agent_id = "%s"\n%s' % (AGENT, sealed))
        d = make_daemon().start()
        # A call stored but answered too late: the retry stores it twice.
        rx.control(store_then_drop_next=1)
        batches = socket_batches()
        for uid, lines in batches.items():
            send_socket(setup, uid, lines)
        write_lines(setup.logs / "auth.log", file_lines() + MALFORMED)
        want = set(sum(batches.values(), [])) | set(file_lines())
        wait_for(lambda: want <= chained_events(out), 90,
                 "the sealed run's events", d)
        d.stop()

        # The second run never seals on its own and is killed: what it
        # delivered is covered by no seal.
        unsealed = 'signing { key = "%s" seal_every = 1000000 ' \
            'seal_interval = 3600000 }' % key
        setup.config(rx.url, log_level="info", socket_extra='mode = "0666"',
                     top_extra='agent_id = "%s"\n%s' % (AGENT, unsealed))
        d = make_daemon().start()
        send_socket(setup, os.geteuid(), LATE)
        want |= set(LATE)
        wait_for(lambda: want <= chained_events(out), 90,
                 "the unsealed run's events", d)
        d.kill()
    finally:
        rx.stop()


def as_bucket(out, bucket):
    """Copies the receiver's objects to bucket/ gzipped, with '.gz' names."""
    for path in object_files(out):
        rel = path.relative_to(out)
        assert re.match(r"^events/\d{4}/\d\d/\d\d/\d\d/[^/]+$",
                        rel.as_posix()), rel
        dst = bucket / (rel.as_posix() + ".gz")
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(dst, "wb") as f:
            f.write(gzip.compress(path.read_bytes(), mtime=0))


_DELIVERIES = {}


@pytest.fixture
def delivery(build, make_daemon, setup, tmp_path_factory):
    """(bucket dir, lines) of one delivery per build, made on first use."""
    if build.id not in _DELIVERIES:
        root = tmp_path_factory.mktemp("athena-" + build.id)
        make_delivery(build, make_daemon, setup, root / "out")
        as_bucket(root / "out", root / "bucket")
        _DELIVERIES[build.id] = (root / "bucket", delivered(root / "out"))
    bucket, lines = _DELIVERIES[build.id]
    return bucket, lines


def unique(lines):
    """One line per (agent, seq): what is left once retries are folded."""
    out = {}
    for ln in lines:
        out.setdefault(ln.key, ln)
    return list(out.values())


def writer(ln):
    return json.loads(ln.original)


# -- the queries -------------------------------------------------------------

def test_doc_pairs_every_query():
    blocks = doc_blocks()
    athena = {n for e, n in blocks if e == "athena"}
    duck = {n for e, n in blocks if e == "duckdb"}
    assert {"table", "viewers", "failed_logins_per_day", "events_per_uid",
            "gaps", "unsealed"} <= athena
    assert athena == duck - {"settings"}, (athena, duck)


def test_delivery_has_duplicates_and_rejects(delivery):
    bucket, lines = delivery
    # The queries must fold the retry's copies, so there must be some.
    keys = collections.Counter(ln.key for ln in lines)
    assert max(keys.values()) > 1
    assert sum(1 for ln in lines if ln.reject is not None) == len(MALFORMED)
    assert sorted(p.suffix for p in bucket.rglob("*") if p.is_file()) == \
        [".gz"] * len(object_files(bucket))


def test_who_viewed_this_record(delivery):
    bucket, lines = delivery
    rows = query(bucket, "viewers", [RECORD])
    want = collections.Counter()
    for uid, batch in socket_batches().items():
        for ln in batch:
            o = json.loads(ln)
            if o["action"] == "record.view" and o["record_id"] == RECORD:
                want[(o["actor"], uid)] += 1
    for ln in LATE:
        o = json.loads(ln)
        if o["record_id"] == RECORD:
            want[(o["actor"], os.geteuid())] += 1
    got = collections.Counter((r["actor"], r["uid"]) for r in rows)
    assert got == want
    assert all(r["source"] == "socket" and r["agent"] == AGENT for r in rows)
    seqs = [r["seq"] for r in rows]
    assert len(set(seqs)) == len(seqs), "a retried view was counted twice"
    times = [r["received"] for r in rows]
    assert times == sorted(times)


def test_failed_logins_per_day(delivery):
    bucket, lines = delivery
    rows = query(bucket, "failed_logins_per_day")
    want = collections.Counter()
    for ln in unique(lines):
        if ln.seal or ln.reject is not None:
            continue
        o = writer(ln)
        if o.get("action") == "login" and o.get("outcome") == "failure":
            want[ln.meta["time"][:10]] += 1
    sent = sum(1 for b in socket_batches().values() for ln in b
               if json.loads(ln).get("outcome") == "failure")
    sent += sum(1 for ln in file_lines()
                if json.loads(ln)["outcome"] == "failure")
    assert sum(want.values()) == sent
    assert {r["day"][:10]: r["failures"] for r in rows} == dict(want)
    assert [r["day"] for r in rows] == sorted(r["day"] for r in rows)


def test_events_per_writer_uid(delivery):
    bucket, lines = delivery
    rows = query(bucket, "events_per_uid")
    want = collections.Counter()
    for uid, batch in socket_batches().items():
        want[("socket", uid, None)] += len(batch)
    want[("socket", os.geteuid(), None)] += len(LATE)
    want[("file", None, "app")] = len(file_lines())
    got = {(r["source"], r["uid"], r["input"]): (r["events"], r["rejected"])
           for r in rows}
    assert {k: v[0] for k, v in got.items()} == dict(want)
    assert {k: v[1] for k, v in got.items() if v[1]} == \
        {("file", None, "app"): len(MALFORMED)}


def seq_ranges(seqs):
    out = []
    for s in sorted(seqs):
        if out and out[-1][1] + 1 == s:
            out[-1][1] = s
        else:
            out.append([s, s])
    return [tuple(r) for r in out]


def test_unsealed_ranges(delivery):
    bucket, lines = delivery
    rows = query(bucket, "unsealed")
    late = {ln.meta["seq"] for ln in unique(lines)
            if not ln.seal and ln.original in set(LATE)}
    assert len(late) == len(LATE)
    # Only the run that died before sealing left events without a seal.
    assert [(r["agent"], r["first_seq"], r["last_seq"], r["events"])
            for r in rows] == \
        [(AGENT, a, b, b - a + 1) for a, b in seq_ranges(late)]


def test_gaps_missing_and_declared(delivery, tmp_path):
    bucket, lines = delivery
    assert query(bucket, "gaps") == [], "a complete delivery has no gap"
    # Lose one object in the middle whose lines are nowhere else.
    copy = tmp_path / "bucket"
    shutil.copytree(bucket, copy)
    where = collections.defaultdict(set)
    for ln in lines:
        where[ln.key].add(ln.object.name)
    victim, lost = None, None
    for name in sorted({ln.object.name for ln in lines}):
        own = sorted(k[1] for k, objs in where.items() if objs == {name})
        rest = [k[1] for k, objs in where.items() if objs != {name}]
        # Lines after the hole must remain, or it is no hole but a tail.
        if own and min(rest) < own[0] and max(rest) > own[-1]:
            victim, lost = name, own
            break
    assert victim, "no object holds lines of its own between others"
    (gz,) = [p for p in copy.rglob(victim + ".gz")]
    gz.unlink()
    want = [(AGENT, a, b, "missing") for a, b in seq_ranges(lost)]
    rows = query(copy, "gaps")
    assert [(r["agent"], r["first_seq"], r["last_seq"], r["kind"])
            for r in rows] == want

    # A gap the daemon declared is told apart from one nobody explained.
    first, last = want[0][1], want[0][2]
    top = max(ln.meta["seq"] for ln in lines)
    gap = {"_aaas_gap": {"first_seq": first, "last_seq": last},
           "_aaas": {"agent": AGENT, "seq": top + 1,
                     "time": lines[-1].meta["time"], "source": "socket"}}
    declared = gz.parent / "declared-gap.gz"
    declared.write_bytes(gzip.compress(
        json.dumps(gap, separators=(",", ":")).encode() + b"\n"))
    rows = query(copy, "gaps")
    assert [(r["first_seq"], r["last_seq"], r["kind"]) for r in rows] == \
        [(first, last, "declared")] + [w[1:] for w in want[1:]]
