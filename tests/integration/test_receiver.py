# SPDX-License-Identifier: MIT
"""The Firehose receiver alone, driven by botocore-signed requests."""

import base64
import datetime
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import botocore.config
import botocore.exceptions
import botocore.session
import pytest
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import (ACCESS_KEY, HERE, OBJECT_NAME_RE, REGION, SECRET_KEY,
                      STREAM, object_files)
from firehose_receiver import FirehoseReceiver

TARGET = "Firehose_20150804.PutRecordBatch"


@pytest.fixture(autouse=True)
def _no_aws_config(monkeypatch, tmp_path):
    """Keep botocore from reading any real AWS config or credentials."""
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


class FixedTimeSigner(SigV4Auth):
    """botocore's signer with the X-Amz-Date chosen by the test."""

    def __init__(self, creds, region, when):
        super().__init__(creds, "firehose", region)
        self._when = when

    def add_auth(self, request):
        request.context["timestamp"] = self._when.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        creq = self.canonical_request(request)
        sts = self.string_to_sign(request, creq)
        self._inject_signature_to_request(request,
                                          self.signature(sts, request))


def batch_body(records, stream=STREAM):
    return json.dumps({
        "DeliveryStreamName": stream,
        "Records": [{"Data": base64.b64encode(r).decode()} for r in records],
    }).encode()


def sign(url, body, target=TARGET, key=ACCESS_KEY, secret=SECRET_KEY,
         token=None, region=REGION, when=None, service="firehose",
         extra_headers=None):
    req = AWSRequest(method="POST", url=url + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": target,
    })
    for k, v in (extra_headers or {}).items():
        req.headers[k] = v
    creds = Credentials(key, secret, token)
    if when is None:
        when = datetime.datetime.now(datetime.timezone.utc)
    signer = FixedTimeSigner(creds, region, when)
    signer._service_name = service
    signer.add_auth(req)
    return dict(req.headers.items())


def post(port, body, headers, conn=None):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/", body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if own:
        conn.close()
    return resp.status, resp, (json.loads(data) if data else None)


def call(rx, records, **kw):
    body = kw.pop("body", None) or batch_body(records,
                                              kw.pop("stream", STREAM))
    return post(rx.port, body, sign(rx.url, body, **kw))


def assert_error(result, status, etype, text=None):
    code, resp, obj = result
    assert code == status, obj
    assert obj["__type"] == etype, obj
    assert resp.getheader("x-amzn-RequestId")
    assert resp.getheader("Content-Type") == "application/x-amz-json-1.1"
    if text:
        assert text in obj["message"], obj


def stored(rx):
    return [p.read_bytes() for p in object_files(rx.out_dir)]


@pytest.fixture
def rx(tmp_path):
    r = FirehoseReceiver(tmp_path / "out", streams=[STREAM], region=REGION,
                         access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    r.start()
    yield r
    r.stop()


def client(rx, secret=SECRET_KEY, token=None, key=ACCESS_KEY):
    cfg = botocore.config.Config(retries={"total_max_attempts": 1},
                                 parameter_validation=False)
    return botocore.session.Session().create_client(
        "firehose", region_name=REGION, endpoint_url=rx.url,
        aws_access_key_id=key, aws_secret_access_key=secret,
        aws_session_token=token, config=cfg)


def test_botocore_client_batch_is_stored(rx):
    recs = [b'{"a":1}\n', b'{"b":2}\n', b"\x00\xffbinary\n"]
    r = client(rx).put_record_batch(DeliveryStreamName=STREAM,
                                    Records=[{"Data": d} for d in recs])
    assert r["FailedPutCount"] == 0
    assert r["Encrypted"] is False
    ids = [e["RecordId"] for e in r["RequestResponses"]]
    assert len(ids) == 3 and len(set(ids)) == 3 and all(ids)
    files = object_files(rx.out_dir)
    assert len(files) == 1
    assert files[0].read_bytes() == b"".join(recs)
    rel = files[0].relative_to(rx.out_dir)
    m = OBJECT_NAME_RE.match(rel.name)
    assert m and m["stream"] == STREAM, rel
    assert rel.parts[:4] == (m["y"], m["m"], m["d"], m["h"]), rel
    s = rx.stats()
    assert (s["calls"], s["calls_ok"], s["records_accepted"]) == (1, 1, 3)
    assert s["newlines_stored"] == 3


def test_put_record_single(rx):
    r = client(rx).put_record(DeliveryStreamName=STREAM,
                              Record={"Data": b"one\n"})
    assert r["RecordId"]
    assert stored(rx) == [b"one\n"]


def test_keep_alive_and_exact_length(rx):
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=30)
    for i in range(3):
        body = batch_body([b"x%d\n" % i])
        code, resp, obj = post(rx.port, body, sign(rx.url, body), conn)
        assert code == 200 and obj["FailedPutCount"] == 0
        assert resp.getheader("Content-Length") == str(
            len(json.dumps(obj, separators=(",", ":"))))
        assert not resp.will_close
    conn.close()
    assert sorted(stored(rx)) == [b"x0\n", b"x1\n", b"x2\n"]


def test_wrong_secret(rx):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client(rx, secret="not-the-secret").put_record_batch(
            DeliveryStreamName=STREAM, Records=[{"Data": b"x\n"}])
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert stored(rx) == []
    assert rx.stats()["refused"] == {"InvalidSignatureException": 1}


def test_tampered_body(rx):
    body = batch_body([b"honest\n"])
    headers = sign(rx.url, body)
    evil = batch_body([b"forged\n"])
    assert len(evil) == len(body)
    assert_error(post(rx.port, evil, headers), 400,
                 "InvalidSignatureException", "Signature mismatch")
    assert stored(rx) == []


def test_tampered_payload_hash_header(rx):
    body = batch_body([b"honest\n"])
    headers = sign(rx.url, body, extra_headers={
        "X-Amz-Content-SHA256": "0" * 64})
    assert_error(post(rx.port, body, headers), 400,
                 "InvalidSignatureException", "Payload hash mismatch")


def test_tampered_signed_header(rx):
    body = batch_body([b"x\n"])
    headers = sign(rx.url, body)
    headers["X-Amz-Target"] = "Firehose_20150804.PutRecord"
    assert_error(post(rx.port, body, headers), 400,
                 "InvalidSignatureException", "Signature mismatch")
    assert stored(rx) == []


def test_unsigned_target_refused(rx):
    body = batch_body([b"x\n"])
    req = AWSRequest(method="POST", url=rx.url + "/", data=body,
                     headers={"Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "firehose",
              REGION).add_auth(req)
    headers = dict(req.headers.items())
    headers["X-Amz-Target"] = TARGET
    assert_error(post(rx.port, body, headers), 400,
                 "IncompleteSignatureException", "x-amz-target")


def test_no_authorization(rx):
    body = batch_body([b"x\n"])
    headers = sign(rx.url, body)
    del headers["Authorization"]
    assert_error(post(rx.port, body, headers), 400,
                 "MissingAuthenticationTokenException")


@pytest.mark.parametrize("minutes,phrase", [(-10, "Signature expired"),
                                            (10, "not yet current")])
def test_stale_or_future_date(rx, minutes, phrase):
    when = datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(minutes=minutes)
    assert_error(call(rx, [b"x\n"], when=when), 400,
                 "InvalidSignatureException", phrase)


def test_date_within_skew_accepted(rx):
    when = datetime.datetime.now(datetime.timezone.utc) - \
        datetime.timedelta(minutes=4)
    code, _, obj = call(rx, [b"x\n"], when=when)
    assert code == 200, obj


def test_unknown_key(rx):
    assert_error(call(rx, [b"x\n"], key="AKIAUNKNOWNKEY000000"), 400,
                 "UnrecognizedClientException")


def test_wrong_region_and_service(rx):
    assert_error(call(rx, [b"x\n"], region="eu-west-1"), 400,
                 "InvalidSignatureException", "region")
    assert_error(call(rx, [b"x\n"], service="kinesis"), 400,
                 "InvalidSignatureException", "service")


def test_session_token(tmp_path):
    r = FirehoseReceiver(tmp_path / "out", streams=[STREAM], region=REGION,
                         access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                         session_token="the-session-token").start()
    try:
        assert_error(call(r, [b"x\n"]), 400, "UnrecognizedClientException",
                     "X-Amz-Security-Token")
        assert_error(call(r, [b"x\n"], token="another-token"), 400,
                     "UnrecognizedClientException")
        code, _, obj = call(r, [b"ok\n"], token="the-session-token")
        assert code == 200, obj
        out = client(r, token="the-session-token").put_record_batch(
            DeliveryStreamName=STREAM, Records=[{"Data": b"sdk\n"}])
        assert out["FailedPutCount"] == 0
        assert sorted(stored(r)) == [b"ok\n", b"sdk\n"]
    finally:
        r.stop()


def test_token_sent_but_not_expected(rx):
    assert_error(call(rx, [b"x\n"], token="stray"), 400,
                 "UnrecognizedClientException")


def test_too_many_records(rx):
    assert_error(call(rx, [b"r\n"] * 501), 400, "ValidationException",
                 "less than or equal to 500")
    code, _, obj = call(rx, [b"r\n"] * 500)
    assert code == 200 and obj["FailedPutCount"] == 0
    assert stored(rx) == [b"r\n" * 500]


def test_no_records(rx):
    assert_error(call(rx, []), 400, "ValidationException",
                 "greater than or equal to 1")


def test_record_too_large(rx):
    assert_error(call(rx, [b"a\n", b"x" * 1024001]), 400,
                 "ValidationException", "1024000")
    assert stored(rx) == []
    code, _, obj = call(rx, [b"x" * 1024000])
    assert code == 200, obj


def test_call_too_large(rx):
    # Each record is legal; together they pass 4 MiB.
    assert_error(call(rx, [b"y" * 1000000] * 5), 400,
                 "InvalidArgumentException", "4 MB")
    assert stored(rx) == []
    code, _, obj = call(rx, [b"z" * 1024000] * 4)
    assert code == 200, obj
    assert len(stored(rx)[0]) == 4096000


def test_unknown_stream(rx):
    assert_error(call(rx, [b"x\n"], stream="other-stream"), 400,
                 "ResourceNotFoundException", "other-stream")


def test_bad_base64(rx):
    body = json.dumps({"DeliveryStreamName": STREAM,
                       "Records": [{"Data": "bm90IGJhc2U2NA=="},
                                   {"Data": "***"}]}).encode()
    assert_error(call(rx, None, body=body), 400, "SerializationException",
                 "Records.2")
    assert stored(rx) == []


def test_bad_json_and_unknown_target(rx):
    assert_error(call(rx, None, body=b"{not json"), 400,
                 "SerializationException")
    assert_error(call(rx, [b"x\n"],
                      target="Firehose_20150804.DeleteDeliveryStream"),
                 400, "UnknownOperationException")


def test_fail_every_nth_record(rx):
    rx.control(fail_every_nth_record=3)
    recs = [b"r%d\n" % i for i in range(1, 8)]
    code, _, obj = call(rx, recs)
    assert code == 200
    assert obj["FailedPutCount"] == 2
    failed = [i for i, e in enumerate(obj["RequestResponses"])
              if "ErrorCode" in e]
    assert failed == [2, 5]
    for i, e in enumerate(obj["RequestResponses"]):
        if i in failed:
            assert e == {"ErrorCode": "ServiceUnavailableException",
                         "ErrorMessage": "Slow down."}
        else:
            assert e["RecordId"] and "ErrorCode" not in e
    assert stored(rx) == [b"".join(r for i, r in enumerate(recs)
                                   if i not in failed)]
    s = rx.stats()
    assert (s["records_accepted"], s["records_failed"]) == (5, 2)


def test_fail_next_calls(rx):
    rx.control(fail_next_calls=2, status=503, type="ServiceUnavailableException")
    assert_error(call(rx, [b"a\n"]), 503, "ServiceUnavailableException")
    assert_error(call(rx, [b"b\n"]), 503, "ServiceUnavailableException")
    code, _, _ = call(rx, [b"c\n"])
    assert code == 200
    assert stored(rx) == [b"c\n"]
    assert rx.stats()["refused"] == {"ServiceUnavailableException": 2}


def test_drop_connection_next(rx):
    rx.control(drop_connection_next=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        call(rx, [b"lost\n"])
    assert stored(rx) == []
    code, _, _ = call(rx, [b"kept\n"])
    assert code == 200
    assert stored(rx) == [b"kept\n"]
    assert rx.stats()["dropped"] == 1


def test_store_then_drop_next(rx):
    rx.control(store_then_drop_next=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        call(rx, [b"stored\n", b"twice\n"])
    assert stored(rx) == [b"stored\ntwice\n"]
    s = rx.stats()
    assert s["stored_unanswered_calls"] == 1
    assert s["records_stored_unanswered"] == 2


def test_delay(rx):
    rx.control(delay_ms=300)
    t = time.monotonic()
    code, _, _ = call(rx, [b"slow\n"])
    assert code == 200 and time.monotonic() - t >= 0.3


def test_control_over_http_changes_secret(rx):
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=10)
    conn.request("POST", "/_control",
                 body=json.dumps({"secret_access_key": "new-secret"}))
    resp = conn.getresponse()
    settings = json.loads(resp.read())
    assert resp.status == 200
    assert "secret_access_key" not in settings
    assert_error(call(rx, [b"x\n"]), 400, "InvalidSignatureException")
    code, _, _ = call(rx, [b"y\n"], secret="new-secret")
    assert code == 200
    conn.request("POST", "/_control", body=b'{"no_such_knob": 1}')
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 400
    conn.request("GET", "/_stats")
    resp = conn.getresponse()
    s = json.loads(resp.read())
    assert s["calls"] == 2 and s["calls_ok"] == 1
    assert s["refused"] == {"InvalidSignatureException": 1}
    conn.close()


def test_concurrent_calls(rx):
    errors = []

    def worker(w):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", rx.port,
                                              timeout=30)
            for i in range(10):
                body = batch_body([b"w%d-%d\n" % (w, i)])
                code, _, obj = post(rx.port, body, sign(rx.url, body), conn)
                if code != 200:
                    errors.append(obj)
            conn.close()
        except Exception as e:  # collected and reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    got = sorted(stored(rx))
    assert got == sorted(b"w%d-%d\n" % (w, i)
                         for w in range(8) for i in range(10))
    s = rx.stats()
    assert s["calls"] == s["calls_ok"] == 80 and s["objects"] == 80


def test_cli_and_tls(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "firehose_receiver.py"), "--port", "0",
         "--out", str(out), "--stream", STREAM, "--stream", "second",
         "--region", REGION, "--access-key", ACCESS_KEY, "--secret-key",
         SECRET_KEY, "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline().decode()
        m = re.match(r"^listening 127\.0\.0\.1 (\d+)\n$", first)
        assert m, first
        port = int(m.group(1))
        import ssl
        ctx = ssl.create_default_context(cafile=str(cert))
        url = "https://127.0.0.1:%d" % port
        for stream in (STREAM, "second"):
            body = batch_body([b"tls-%s\n" % stream.encode()], stream)
            conn = http.client.HTTPSConnection("127.0.0.1", port,
                                               context=ctx, timeout=30)
            conn.request("POST", "/", body=body, headers=sign(url, body))
            resp = conn.getresponse()
            obj = json.loads(resp.read())
            conn.close()
            assert resp.status == 200 and obj["FailedPutCount"] == 0, obj
        assert sorted(p.read_bytes() for p in object_files(out)) == \
            [b"tls-audit-events\n", b"tls-second\n"]
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def test_refusals_are_logged(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "firehose_receiver.py"), "--out",
         str(out), "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY,
         "--fail-every-nth-record", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(proc.stdout.readline().split()[2])

        class R:
            pass
        r = R()
        r.port, r.url = port, "http://127.0.0.1:%d" % port
        assert_error(call(r, [b"x\n"], secret="wrong"), 400,
                     "InvalidSignatureException")
        code, _, obj = call(r, [b"a\n", b"b\n"])
        assert code == 200 and obj["FailedPutCount"] == 1
    finally:
        proc.terminate()
        proc.wait(10)
    err = proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    refused = [ln for ln in err.splitlines() if "refused" in ln]
    assert len(refused) == 1 and "InvalidSignatureException" in refused[0]
    assert [p.read_bytes() for p in object_files(out)] == [b"a\n"]
    assert Path(out).is_dir()
