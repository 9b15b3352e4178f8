# SPDX-License-Identifier: MIT
"""The AWS CLI talks to the test receiver as it would to Firehose.

If the receiver accepts what a real client sends, signatures, headers and
body shape included, then what it accepts from the daemon means something.
Debian's /usr/bin/aws is used on purpose: another `aws` may come first on
PATH.
"""

import base64
import json
import os
import subprocess

import pytest

from conftest import (ACCESS_KEY, REGION, SECRET_KEY, STREAM, FirehoseReceiver,
                      object_files)

AWS = "/usr/bin/aws"


@pytest.fixture(autouse=True)
def _need_cli():
    if not os.access(AWS, os.X_OK):
        pytest.fail("%s is missing: scripts/deps installs Debian's awscli"
                    % AWS)


def cli_env(home, key=ACCESS_KEY, secret=SECRET_KEY, token=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k.lower() not in (
               "http_proxy", "https_proxy", "all_proxy")}
    env.update({
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
        "AWS_RETRY_MODE": "standard",
        "AWS_MAX_ATTEMPTS": "1",
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
    })
    if token is not None:
        env["AWS_SESSION_TOKEN"] = token
    return env


def aws(rx, home, *args, **env_kw):
    cmd = [AWS, "--endpoint-url", rx.url, "--region", REGION,
           "--output", "json", "firehose"] + list(args)
    return subprocess.run(cmd, env=cli_env(home, **env_kw),
                          capture_output=True, text=True, timeout=120)


def records_file(tmp_path, records):
    p = tmp_path / "records.json"
    p.write_text(json.dumps([{"Data": base64.b64encode(r).decode()}
                             for r in records]))
    return "file://%s" % p


def stored(rx):
    return b"".join(p.read_bytes() for p in object_files(rx.out_dir))


@pytest.fixture
def rx(tmp_path):
    r = FirehoseReceiver(tmp_path / "out", streams=[STREAM], region=REGION,
                         access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    r.start()
    yield r
    r.stop()


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return h


def test_put_record_batch_is_stored(rx, home, tmp_path):
    recs = [b'{"n":%d,"text":"caf\xc3\xa9"}\n' % i for i in range(20)]
    recs.append(b"\x00\x01\xfe\xff binary\n")
    p = aws(rx, home, "put-record-batch", "--delivery-stream-name", STREAM,
            "--records", records_file(tmp_path, recs))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["FailedPutCount"] == 0, out
    assert len(out["RequestResponses"]) == len(recs)
    assert all("RecordId" in r for r in out["RequestResponses"]), out
    assert stored(rx) == b"".join(recs)
    assert rx.stats()["calls_ok"] == 1


def test_put_record_is_stored(rx, home):
    p = aws(rx, home, "put-record", "--delivery-stream-name", STREAM,
            "--record", json.dumps({"Data": base64.b64encode(
                b'{"single":true}\n').decode()}))
    assert p.returncode == 0, p.stderr
    assert "RecordId" in json.loads(p.stdout)
    assert stored(rx) == b'{"single":true}\n'


def test_session_token_is_checked(tmp_path, home):
    with FirehoseReceiver(tmp_path / "out2", streams=[STREAM], region=REGION,
                          access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                          session_token="tok/en+1") as r:
        recs = [b"with token\n"]
        p = aws(r, home, "put-record-batch", "--delivery-stream-name",
                STREAM, "--records", records_file(tmp_path, recs),
                token="tok/en+1")
        assert p.returncode == 0, p.stderr
        assert stored(r) == recs[0]
        p = aws(r, home, "put-record-batch", "--delivery-stream-name",
                STREAM, "--records", records_file(tmp_path, recs),
                token="wrong")
        assert p.returncode != 0
        assert "UnrecognizedClientException" in p.stderr, p.stderr


def test_wrong_secret_is_refused(rx, home, tmp_path):
    p = aws(rx, home, "put-record-batch", "--delivery-stream-name", STREAM,
            "--records", records_file(tmp_path, [b"x\n"]),
            secret="not-the-secret")
    assert p.returncode != 0
    assert "InvalidSignatureException" in p.stderr, p.stderr
    assert stored(rx) == b""


def test_unknown_stream(rx, home, tmp_path):
    p = aws(rx, home, "put-record-batch", "--delivery-stream-name", "nope",
            "--records", records_file(tmp_path, [b"x\n"]))
    assert p.returncode != 0
    assert "ResourceNotFoundException" in p.stderr, p.stderr


def test_per_record_refusal_as_the_cli_sees_it(rx, home, tmp_path):
    rx.control(reject_containing="BAD")
    recs = [b"good 1\n", b"BAD one\n", b"good 2\n"]
    p = aws(rx, home, "put-record-batch", "--delivery-stream-name", STREAM,
            "--records", records_file(tmp_path, recs))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["FailedPutCount"] == 1, out
    r = out["RequestResponses"]
    assert "RecordId" in r[0] and "RecordId" in r[2], out
    assert r[1]["ErrorCode"] == "InvalidArgumentException", out
    assert stored(rx) == b"good 1\ngood 2\n"
