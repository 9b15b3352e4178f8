# SPDX-License-Identifier: MIT
"""The hash chain, seals, epochs and `aaasctl verify`, on a real delivery.

One module-wide delivery is made through the receiver by two agents (with
a retry that stores duplicates and with several key epochs); each tamper
test changes a copy of the objects and checks that verify names what was
done.
"""

import base64
import gzip
import json
import re
import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey)

from conftest import delivered, jline, object_files, wait_for, write_lines

EVENTS_PER_ROUND = 60
ROUNDS = 4
SIG_RE = re.compile(rb',"sig":"([A-Za-z0-9+/=]{88})"')


def ctl(build):
    return str(build.path / "aaasctl")


def keygen(build, path):
    out = subprocess.run([ctl(build), "keygen", "-f", str(path)],
                         capture_output=True, check=True)
    pub = path.with_suffix(".pub")
    pub.write_bytes(out.stdout)
    return pub


def verify(build, paths, keys, stdin=None):
    args = [ctl(build), "verify", "--json"]
    for k in keys:
        args += ["--key", str(k)]
    args += [str(p) for p in paths]
    p = subprocess.run(args, capture_output=True, input=stdin, timeout=120)
    assert p.returncode in (0, 1), p.stderr.decode()
    return p.returncode, json.loads(p.stdout)


def deliver(make_daemon, setup, receiver, agent, key, epoch):
    """Runs one agent to completion; returns the lines it delivered."""
    for d in (setup.spool, setup.state):
        shutil.rmtree(d)
        d.mkdir()
    for f in setup.logs.iterdir():
        f.unlink()
    setup.config(receiver.url, socket=False, log_level="info",
                 top_extra='agent_id = "%s"\nsigning { key = "%s" '
                           'seal_every = 25 seal_interval = 150 epoch = %d }'
                           % (agent, key, epoch))
    d = make_daemon().start()
    log = setup.logs / "app.log"
    before = receiver.stats()["newlines_stored"]
    # A call that is stored but whose answer is lost: retry duplicates.
    receiver.control(store_then_drop_next=1)
    for r in range(ROUNDS):
        write_lines(log, [jline(agent=agent, round=r, i=i, pad="x" * 40)
                          for i in range(EVENTS_PER_ROUND)], mode="ab")
        wait_for(lambda: receiver.stats()["newlines_stored"] - before >=
                 (r + 1) * EVENTS_PER_ROUND, 60, "round %d delivered" % r, d)
        if epoch:
            # Let the epoch run out so that the next round is in another.
            time.sleep(epoch + 0.3)
    d.stop()
    return d


@pytest.fixture
def delivery(build, make_daemon, setup, receiver, tmp_path):
    """Two agents' objects, their public keys and the key files."""
    keys = tmp_path / "keys"
    keys.mkdir()
    key_a, key_b = keys / "a.key", keys / "b.key"
    pub_a, pub_b = keygen(build, key_a), keygen(build, key_b)
    first_pem = key_a.read_text().split("\n", 1)[1]
    deliver(make_daemon, setup, receiver, "a" * 32, key_a, 1)
    deliver(make_daemon, setup, receiver, "b" * 32, key_b, 0)
    return {
        "out": Path(receiver.out_dir), "pubs": [pub_a, pub_b],
        "key_a": key_a, "first_pem_a": first_pem, "setup": setup,
        "tmp": tmp_path,
    }


def copy_out(delivery, name):
    dst = delivery["tmp"] / name
    shutil.copytree(delivery["out"], dst, ignore=shutil.ignore_patterns(".*"))
    return dst


def agent_report(report, agent):
    for a in report["agents"]:
        if a["agent"] == agent:
            return a
    raise AssertionError("no report for agent %s: %r" % (agent, report))


def find_lines(out, pred):
    """(path, index, raw) of each line that pred(raw) accepts."""
    found = []
    for path in object_files(out):
        for i, raw in enumerate(path.read_bytes().split(b"\n")[:-1]):
            if pred(raw):
                found.append((path, i, raw))
    return found


def rewrite(path, fn):
    lines = path.read_bytes().split(b"\n")[:-1]
    lines = fn(lines)
    path.write_bytes(b"".join(ln + b"\n" for ln in lines))


def seq_of(raw):
    return int(re.search(rb'"_aaas":\{"agent":"[0-9a-f]+","seq":(\d+)',
                         raw).group(1))


def is_event(agent):
    tag = b'{"agent":"%s","round"' % agent.encode()
    return lambda raw: raw.startswith(tag)


def is_seal(agent):
    return lambda raw: raw.startswith(b'{"_aaas_seal":{"agent":"%s"'
                                      % agent.encode())


def resign(raw, key, key_id=None, epoch=None):
    """A seal line signed again with key, optionally with new fields."""
    if key_id:
        raw = re.sub(rb'"key_id":"[0-9a-f]{16}"',
                     b'"key_id":"%s"' % key_id.encode(), raw)
    if epoch is not None:
        raw = re.sub(rb'"epoch":\d+', b'"epoch":%d' % epoch, raw)
    m = SIG_RE.search(raw)
    msg = b"aaas-seal-v1\0" + raw[:m.start()] + raw[m.end():]
    sig = base64.b64encode(key.sign(msg))
    return raw[:m.start()] + b',"sig":"' + sig + b'"' + raw[m.end():]


def load_key(path):
    pem = path.read_bytes().split(b"\n", 1)[1]
    return serialization.load_pem_private_key(pem, password=None)


def key_id(pub_raw):
    return hashlib.sha256(pub_raw).hexdigest()[:16]


A, B = "a" * 32, "b" * 32


def test_clean_delivery_with_retries_verifies(build, delivery):
    lines = delivered(delivery["out"])
    seals = [ln for ln in lines if ln.seal]
    assert seals, "no seal was delivered"
    rc, rep = verify(build, [delivery["out"]], delivery["pubs"])
    assert rc == 0 and rep["ok"], rep
    a, b = agent_report(rep, A), agent_report(rep, B)
    assert a["duplicates"] + a["seal_duplicates"] > 0, a
    assert a["lines"] >= ROUNDS * EVENTS_PER_ROUND
    assert a["missing"] == [] and a["unsealed_tail"] is None
    # The whole history of each agent is one verified range per epoch.
    top = max(ln.meta["seq"] for ln in lines if ln.meta["agent"] == A)
    assert a["verified"][0]["first"] == 1
    assert a["verified"][-1]["last"] == top
    assert len({r["epoch"] for r in a["verified"]}) >= 3, a["verified"]
    assert {r["epoch"] for r in b["verified"]} == {0}


def test_every_line_is_chained(delivery):
    for ln in delivered(delivery["out"]):
        if not ln.seal:
            assert re.fullmatch(r"[0-9a-f]{64}", ln.meta["chain"]), ln.meta
            assert list(ln.meta)[-1] == "chain"


def test_gzip_objects_and_stdin(build, delivery):
    out = copy_out(delivery, "gz")
    for p in object_files(out):
        with gzip.open(str(p) + ".gz", "wb") as f:
            f.write(p.read_bytes())
        p.unlink()
    rc, rep = verify(build, [out], delivery["pubs"])
    assert rc == 0, rep
    data = b"".join(p.read_bytes() for p in object_files(delivery["out"]))
    rc, rep = verify(build, ["-"], delivery["pubs"], stdin=data)
    assert rc == 0 and rep["objects"] == 1, rep


def test_without_keys_nothing_verifies(build, delivery):
    rc, rep = verify(build, [delivery["out"]], [])
    assert rc == 1
    assert all(s["reason"].startswith("signed with a key that is neither")
               for s in agent_report(rep, A)["bad_seals"])


def test_deleted_line_is_missing(build, delivery):
    out = copy_out(delivery, "del")
    path, i, raw = find_lines(out, is_event(A))[30]
    rewrite(path, lambda ls: ls[:i] + ls[i + 1:] if ls.count(raw) == 1
            else [ln for ln in ls if ln != raw])
    # Every copy goes, retried ones included.
    for p, j, r in find_lines(out, lambda x: x == raw):
        rewrite(p, lambda ls: [ln for ln in ls if ln != raw])
    rc, rep = verify(build, [out], delivery["pubs"])
    a = agent_report(rep, A)
    assert rc == 1
    assert {"first": seq_of(raw), "last": seq_of(raw)} in a["missing"], a


def test_altered_byte_is_named(build, delivery):
    out = copy_out(delivery, "alt")
    hits = find_lines(out, is_event(A))
    path, i, raw = hits[40]
    bad = raw.replace(b'"pad":"x', b'"pad":"y', 1)
    assert bad != raw
    for p, j, r in find_lines(out, lambda x: x == raw):
        rewrite(p, lambda ls: [bad if ln == raw else ln for ln in ls])
    rc, rep = verify(build, [out], delivery["pubs"])
    a = agent_report(rep, A)
    assert rc == 1
    assert a["altered"] == [seq_of(raw)], a


def test_inserted_forged_event_is_named(build, delivery):
    out = copy_out(delivery, "ins")
    path, i, raw = find_lines(out, is_event(A))[10]
    forged = raw.replace(b'"round":', b'"forged":true,"round":', 1)
    rewrite(path, lambda ls: ls + [forged])
    rc, rep = verify(build, [out], delivery["pubs"])
    a = agent_report(rep, A)
    assert rc == 1
    assert a["inserted"] == [seq_of(raw)] and a["altered"] == [], a


def test_reordered_events_are_named(build, delivery):
    """Swapping two events' places in the history changes their numbers.

    Order inside an object carries no meaning (retries reorder records),
    so moving whole lines is harmless and verifies; giving an event
    another's number is what reordering the history takes, and both
    places are reported as altered.
    """
    out = copy_out(delivery, "reo")
    path = object_files(out)[0]
    rewrite(path, lambda ls: list(reversed(ls)))
    rc, rep = verify(build, [out], delivery["pubs"])
    assert rc == 0, rep

    hits = find_lines(out, is_event(A))
    (p1, i1, r1), (p2, i2, r2) = hits[20], hits[21]
    s1, s2 = seq_of(r1), seq_of(r2)
    n1 = r1.replace(b'"seq":%d,' % s1, b'"seq":%d,' % s2)
    n2 = r2.replace(b'"seq":%d,' % s2, b'"seq":%d,' % s1)
    for p, j, r in find_lines(out, lambda x: x in (r1, r2)):
        rewrite(p, lambda ls: [n1 if ln == r1 else n2 if ln == r2 else ln
                               for ln in ls])
    rc, rep = verify(build, [out], delivery["pubs"])
    a = agent_report(rep, A)
    assert rc == 1
    # The line after the pair links to a chain member that was moved
    # away, so it cannot be told from an altered line and is named too.
    assert {s1, s2} <= set(a["altered"]) <= {s1, s2, max(s1, s2) + 1}, a


def test_truncated_object_is_named(build, delivery):
    out = copy_out(delivery, "trunc")
    path = max(object_files(out), key=lambda p: p.stat().st_size)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    rc, rep = verify(build, [out], delivery["pubs"])
    assert rc == 1
    assert rep["unchained"] + rep["malformed"] >= 1, rep
    assert any(agent_report(rep, ag)["missing"] for ag in (A, B)), rep


def test_replayed_object_is_named(build, delivery):
    out = copy_out(delivery, "replay")
    objs = [p for p in object_files(out)
            if any(is_event(A)(r) for r in p.read_bytes().split(b"\n"))]
    old, new = objs[0], objs[-1]
    new.write_bytes(old.read_bytes())
    rc, rep = verify(build, [out], delivery["pubs"])
    a = agent_report(rep, A)
    assert rc == 1
    assert a["missing"], a
    assert str(new) in rep["replayed_objects"], rep


def test_swapped_seals_between_agents(build, delivery):
    out = copy_out(delivery, "swap")
    pa, ia, sa = find_lines(out, is_seal(A))[1]
    pb, ib, sb = find_lines(out, is_seal(B))[1]
    # Each seal moves into the other's stream under the other's name.
    na = sa.replace(b'"_aaas":{"agent":"%s"' % A.encode(),
                    b'"_aaas":{"agent":"%s"' % B.encode())
    nb = sb.replace(b'"_aaas":{"agent":"%s"' % B.encode(),
                    b'"_aaas":{"agent":"%s"' % A.encode())
    for p, j, r in find_lines(out, lambda x: x in (sa, sb)):
        rewrite(p, lambda ls: [na if ln == sa else nb if ln == sb else ln
                               for ln in ls])
    rc, rep = verify(build, [out], delivery["pubs"])
    assert rc == 1
    for ag in (A, B):
        reasons = [s["reason"] for s in agent_report(rep, ag)["bad_seals"]]
        assert "made by another agent" in reasons, (ag, reasons)


def test_seal_forged_with_another_key(build, delivery):
    out = copy_out(delivery, "forge")
    path, i, raw = find_lines(out, is_seal(B))[2]
    other = Ed25519PrivateKey.generate()
    pub = other.public_key().public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw)
    forged = resign(raw, other, key_id=key_id(pub))
    for p, j, r in find_lines(out, lambda x: x == raw):
        rewrite(p, lambda ls: [forged if ln == raw else ln for ln in ls])
    rc, rep = verify(build, [out], delivery["pubs"])
    b = agent_report(rep, B)
    assert rc == 1
    bad = [s for s in b["bad_seals"] if s["seq"] == seq_of(raw)]
    assert bad and bad[0]["reason"].startswith("signed with a key that is "
                                               "neither"), b
    # Also signed with the real key id: the signature does not verify.
    forged = resign(raw, other)
    for p, j, r in find_lines(out, lambda x: x == resign(raw, other,
                                                          key_id(pub))):
        rewrite(p, lambda ls: [forged if ln.startswith(forged[:60]) and
                               b"_aaas_seal" in ln else ln for ln in ls])
    rc, rep = verify(build, [out], delivery["pubs"])
    bad = [s for s in agent_report(rep, B)["bad_seals"]
           if s["seq"] == seq_of(raw)]
    assert bad and bad[0]["reason"] == "signature does not verify", rep


def test_reseal_earlier_epoch_with_later_key(build, delivery):
    """The current key (all a root compromise now yields) cannot re-sign
    what an earlier epoch sealed."""
    out = copy_out(delivery, "reseal")
    text = delivery["key_a"].read_text()
    epoch = int(text.split()[1])
    assert epoch >= 2, text.splitlines()[0]
    key = load_key(delivery["key_a"])
    pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    # Not the seal that announces epoch 1: that one holds the key chain.
    path, i, raw = [h for h in find_lines(out, is_seal(A))
                    if b'"epoch":0,' in h[2] and b'"next_key"' not in h[2]][0]
    forged = resign(raw, key, key_id=key_id(pub), epoch=epoch)
    for p, j, r in find_lines(out, lambda x: x == raw):
        rewrite(p, lambda ls: [forged if ln == raw else ln for ln in ls])
    rc, rep = verify(build, [out], delivery["pubs"])
    bad = [s for s in agent_report(rep, A)["bad_seals"]
           if s["seq"] == seq_of(raw)]
    assert rc == 1
    assert bad and bad[0]["reason"] == ("covers lines from before its key's "
                                        "epoch began"), rep


def test_removed_last_seal_leaves_unsealed_tail(build, delivery):
    out = copy_out(delivery, "nolast")
    seals = find_lines(out, is_seal(B))
    last = max(seals, key=lambda h: seq_of(h[2]))[2]
    for p, j, r in find_lines(out, lambda x: x == last):
        rewrite(p, lambda ls: [ln for ln in ls if ln != last])
    rc, rep = verify(build, [out], delivery["pubs"])
    b = agent_report(rep, B)
    assert rc == 1
    assert b["unsealed_tail"] is not None, b
    assert b["missing"] == [], b


def test_ended_epoch_keys_are_gone(delivery):
    """No file the daemon or keygen wrote still holds the first key."""
    first = delivery["first_pem_a"].encode()
    body = b"".join(first.split(b"\n")[1:-2])
    raw = base64.b64decode(body)
    roots = [delivery["setup"].root, delivery["key_a"].parent]
    for root in roots:
        for f in Path(root).rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                assert body not in data and raw not in data, f
    assert not Path(str(delivery["key_a"]) + ".next").exists()
