# SPDX-License-Identifier: MIT
"""The Kinesis Data Streams sink against kinesalite.

kinesalite is a third-party implementation of the Kinesis API (from the
npm registry, installed by scripts/deps under tests/kinesalite/).  The
daemon sends with PutRecords; the test reads every shard back with
GetShardIterator and GetRecords through botocore, so it checks what a
real consumer would see.
"""

import os
import re
import shutil
import subprocess

import botocore.config
import botocore.session
import pytest

from conftest import (ACCESS_KEY, REGION, SECRET_KEY, Line, REPO_ROOT,
                      assert_exactly_once, check_meta, jline, strip_aaas,
                      wait_for, write_lines)

KINESALITE = REPO_ROOT / "tests" / "kinesalite"
STREAM = "audit-stream"


@pytest.fixture
def kinesalite(tmp_path):
    node = shutil.which("node")
    if not node or not (KINESALITE / "node_modules" / "kinesalite").is_dir():
        pytest.fail("kinesalite is not installed: run scripts/deps")
    log = open(tmp_path / "kinesalite.log", "w+")
    proc = subprocess.Popen([node, str(KINESALITE / "serve.js"), "0"],
                            stdout=subprocess.PIPE, stderr=log, text=True,
                            cwd=str(KINESALITE))
    line = proc.stdout.readline()
    m = re.match(r"listening 127\.0\.0\.1 (\d+)$", line.strip())
    if not m:
        proc.kill()
        log.seek(0)
        pytest.fail("kinesalite did not start: %r %s" % (line, log.read()))
    url = "http://127.0.0.1:%s" % m.group(1)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture
def kinesis(kinesalite, monkeypatch, tmp_path):
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    cfg = botocore.config.Config(retries={"total_max_attempts": 1})
    client = botocore.session.Session().create_client(
        "kinesis", region_name=REGION, endpoint_url=kinesalite,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        config=cfg)
    client.url = kinesalite
    return client


def create_stream(kinesis, shards=2):
    kinesis.create_stream(StreamName=STREAM, ShardCount=shards)
    wait_for(lambda: kinesis.describe_stream_summary(StreamName=STREAM)[
        "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", 20,
        "the stream to be active")


def read_all(kinesis, per_shard=None):
    """Every record of every shard, oldest first per shard."""
    out = []
    for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]:
        before = len(out)
        it = kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            r = kinesis.get_records(ShardIterator=it, Limit=10000)
            out.extend(r["Records"])
            if not r["Records"]:
                break
            it = r.get("NextShardIterator")
        if per_shard is not None:
            per_shard[shard["ShardId"]] = len(out) - before
    return out


def lines_of(records):
    lines = []
    for rec in records:
        data = rec["Data"]
        assert data.endswith(b"\n"), data[-100:]
        for raw in data[:-1].split(b"\n"):
            original, meta = strip_aaas(raw)
            lines.append(Line(raw, original, meta, rec["PartitionKey"]))
    return lines


def config(setup, url, extra=""):
    """The usual test config with a kinesis section for the sink."""
    path = setup.config(url, socket=False, stream=STREAM)
    text = path.read_text().replace("firehose {", "kinesis { %s " % extra)
    path.write_text(text)
    return path


def wait_records(kinesis, n, daemon, timeout=90):
    return wait_for(lambda: len(lines_of(read_all(kinesis))) >= n, timeout,
                    "%d lines in the stream" % n, daemon, interval=0.5)


def test_each_event_is_a_record_with_its_key(make_daemon, setup, kinesis):
    create_stream(kinesis)
    config(setup, kinesis.url, 'partition_key = "{agent}/{seq}"')
    lines = [jline(n=i, pad="k" * (i % 40)) for i in range(700)]
    d = make_daemon().start()
    write_lines(setup.logs / "app.log", lines)
    wait_records(kinesis, len(lines), d)
    d.stop()

    per_shard = {}
    records = read_all(kinesis, per_shard)
    got = lines_of(records)
    check_meta(got)
    assert_exactly_once(got, lines)
    assert len(records) == len(lines)
    for rec, ln in zip(records, got):
        assert rec["PartitionKey"] == "%s/%d" % (ln.meta["agent"],
                                                 ln.meta["seq"])
    # The keys differ per event, so they hash to both shards.
    assert len(per_shard) == 2 and min(per_shard.values()) > 0, per_shard


def test_packed_records_with_a_fixed_key(make_daemon, setup, kinesis):
    create_stream(kinesis, shards=1)
    config(setup, kinesis.url, 'partition_key = "host-a" pack = true')
    lines = [jline(n=i, pad="p" * 300) for i in range(3000)]
    d = make_daemon().start()
    write_lines(setup.logs / "app.log", lines)
    wait_records(kinesis, len(lines), d)
    d.stop()

    records = read_all(kinesis)
    got = lines_of(records)
    check_meta(got)
    assert_exactly_once(got, lines)
    assert len(records) < len(lines) / 10, len(records)
    assert {r["PartitionKey"] for r in records} == {"host-a"}
    # Each record stays within the service's 1 MiB with its key.
    assert max(len(r["Data"]) for r in records) + 6 <= 1024 * 1024


def test_missing_stream_keeps_events_until_it_exists(make_daemon, setup,
                                                     kinesis):
    config(setup, kinesis.url)
    lines = [jline(n=i) for i in range(200)]
    d = make_daemon().start()
    write_lines(setup.logs / "app.log", lines)
    wait_for(lambda: "ResourceNotFoundException" in d.stderr(), 30,
             "the missing stream to be reported", d)
    assert d.alive()
    create_stream(kinesis, shards=1)
    # retry_max is 1 s in the test config, so the next try comes soon.
    wait_records(kinesis, len(lines), d)
    text = d.stop()
    got = lines_of(read_all(kinesis))
    assert_exactly_once(got, lines)
    assert "0 left in the spool" in text
    # The default key is the agent id.
    assert {ln.object for ln in got} == {got[0].meta["agent"]}
