#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A local stand-in for Amazon Kinesis Data Firehose, for tests and benchmarks.

It speaks the JSON 1.1 protocol of PutRecordBatch and PutRecord on
127.0.0.1, checks every call's SigV4 signature with botocore, enforces the
service limits, and stores each accepted call as one object file laid out
the way Firehose lays out S3 output.  Faults are injected at run time
through POST /_control; counters are read from GET /_stats.

Run it as a script (see --help) or import FirehoseReceiver.
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import hmac
import http.client
import http.server
import io
import json
import os
import random
import re
import socket
import struct
import ssl
import sys
import threading
import time
import uuid

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TARGET_PREFIX = "Firehose_20150804."
CONTENT_TYPE = "application/x-amz-json-1.1"
SERVICE = "firehose"

MAX_RECORDS = 500
MAX_RECORD_BYTES = 1024000
MAX_CALL_BYTES = 4 * 1024 * 1024
# Well above the largest legal body (4 MiB of data grows by 4/3 in base64,
# plus JSON framing); anything bigger is refused without being read.
MAX_BODY_BYTES = 16 * 1024 * 1024
CLOCK_SKEW = datetime.timedelta(minutes=5)
STREAM_NAME_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,64}$")
AMZ_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")

# Headers whose meaning the receiver relies on: a request that does not
# sign them could have been altered in flight without the signature
# noticing, so it is refused.
REQUIRED_SIGNED = ("host", "x-amz-date", "x-amz-target", "content-type")

CONTROL_KEYS = {
    "fail_every_nth_record": int,
    "fail_next_calls": int,
    "status": int,
    "type": str,
    "message": str,
    "delay_ms": int,
    "drop_connection_next": int,
    "store_then_drop_next": int,
    "pause": bool,
    "access_key": str,
    "secret_access_key": str,
    "session_token": (str, type(None)),
    "verify": bool,
    # Per-record refusals that can never succeed (InvalidArgumentException
    # for that record alone): records holding this text, or longer than
    # this many bytes.
    "reject_containing": str,
    "reject_records_over": int,
    # Whole-call faults: this share of calls (0-100, from a seeded random
    # sequence) is throttled; the next N connections are reset (RST) or
    # held without an answer for stall_ms and closed without storing; the
    # next N calls are stored and answered stall_ms late (a lost answer
    # for a client with a shorter timeout), or stored and answered with a
    # malformed 200 body.
    "throttle_percent": int,
    "throttle_seed": int,
    "reset_connection_next": int,
    "stall_next_calls": int,
    "stall_ms": int,
    "store_then_stall_next": int,
    "malformed_next_calls": int,
}


class ServiceError(Exception):
    """A refusal answered with the service's JSON 1.1 error shape."""

    def __init__(self, status, error_type, message):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class _DropConnection(Exception):
    """Close the connection without answering."""


def _amz_now():
    return datetime.datetime.now(datetime.timezone.utc)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(path):
    """Create path and fsync each parent whose entry list changed."""
    missing = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            continue
        _fsync_dir(os.path.dirname(d))


class _VerifyingSigner(SigV4Auth):
    """botocore's SigV4 steps, fed exactly the headers the client signed.

    botocore's own header selection drops some names (user-agent, expect)
    and adds host when absent; a verifier must canonicalise the very set
    the client named in SignedHeaders instead.
    """

    def __init__(self, credentials, region, signed_names):
        super().__init__(credentials, SERVICE, region)
        self._signed_names = signed_names

    def headers_to_sign(self, request):
        out = http.client.HTTPMessage()
        for name in self._signed_names:
            for value in request.headers.get_all(name) or []:
                out[name] = value
        return out


class ReceiverState:
    """Settings, fault counters and statistics shared by handler threads."""

    def __init__(self, out_dir, streams, region, access_key, secret_key,
                 session_token=None, prefix="", verify=True, fsync=True):
        self.lock = threading.Lock()
        self.unpaused = threading.Condition(self.lock)
        self.out_dir = os.path.abspath(out_dir)
        self.tmp_dir = os.path.join(self.out_dir, ".incoming")
        os.makedirs(self.tmp_dir, exist_ok=True)
        self.streams = set(streams)
        self.region = region
        self.prefix = prefix
        self.fsync = fsync
        self.settings = {
            "fail_every_nth_record": 0,
            "fail_next_calls": 0,
            "status": 500,
            "type": "ServiceUnavailableException",
            "message": "",
            "delay_ms": 0,
            "drop_connection_next": 0,
            "store_then_drop_next": 0,
            "pause": False,
            "access_key": access_key,
            "secret_access_key": secret_key,
            "session_token": session_token,
            "verify": verify,
            "reject_containing": "",
            "reject_records_over": 0,
            "throttle_percent": 0,
            "throttle_seed": 1,
            "reset_connection_next": 0,
            "stall_next_calls": 0,
            "stall_ms": 30000,
            "store_then_stall_next": 0,
            "malformed_next_calls": 0,
        }
        self.rng = random.Random(1)
        self.record_counter = 0
        self.stats = {
            "calls": 0,
            "calls_ok": 0,
            "records_accepted": 0,
            "records_failed": 0,
            "records_rejected": 0,
            "throttled_calls": 0,
            "reset": 0,
            "stalled": 0,
            "refused": {},
            "dropped": 0,
            "stored_unanswered_calls": 0,
            "records_stored_unanswered": 0,
            "newlines_stored_unanswered": 0,
            "objects": 0,
            "bytes_stored": 0,
            "newlines_stored": 0,
        }

    def control(self, changes):
        if not isinstance(changes, dict):
            raise ValueError("control body must be a JSON object")
        for key, value in changes.items():
            kind = CONTROL_KEYS.get(key)
            if kind is None:
                raise ValueError("unknown control key %r" % key)
            if kind is int and (not isinstance(value, int)
                                or isinstance(value, bool) or value < 0):
                raise ValueError("%s must be a non-negative integer" % key)
            if kind is not int and not isinstance(value, kind):
                raise ValueError("%s has the wrong type" % key)
        if "status" in changes and not 400 <= changes["status"] <= 599:
            raise ValueError("status must be an HTTP error status")
        if changes.get("throttle_percent", 0) > 100:
            raise ValueError("throttle_percent must be 0 to 100")
        with self.lock:
            self.settings.update(changes)
            if "throttle_seed" in changes:
                self.rng = random.Random(changes["throttle_seed"])
            self.unpaused.notify_all()
            return dict(self.settings)

    def snapshot(self):
        with self.lock:
            s = json.loads(json.dumps(self.stats))
            s["settings"] = {k: v for k, v in self.settings.items()
                             if k not in ("secret_access_key",
                                          "session_token")}
            return s

    def count_refused(self, error_type):
        with self.lock:
            r = self.stats["refused"]
            r[error_type] = r.get(error_type, 0) + 1

    def throttle_now(self):
        """True for throttle_percent of the calls, in a seeded order."""
        with self.lock:
            pct = self.settings["throttle_percent"]
            if pct and self.rng.randrange(100) < pct:
                self.stats["throttled_calls"] += 1
                return True
            return False

    def reject_reason(self, data):
        """Why a record is refused for good, or None."""
        with self.lock:
            text = self.settings["reject_containing"]
            over = self.settings["reject_records_over"]
        if text and text.encode("utf-8") in data:
            return "Record contains a value the destination refuses"
        if over and len(data) > over:
            return ("Record size %d exceeds the destination's limit of %d"
                    % (len(data), over))
        return None

    def take(self, key):
        """Consume one unit of a "next N calls" fault; True if it fires."""
        with self.lock:
            if self.settings[key] > 0:
                self.settings[key] -= 1
                return True
            return False

    def wait_unpaused(self, limit=120.0):
        deadline = time.monotonic() + limit
        with self.lock:
            while self.settings["pause"]:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.unpaused.wait(left)

    # -- signature ---------------------------------------------------------

    def authenticate(self, method, path, headers, body, scheme, host):
        with self.lock:
            verify = self.settings["verify"]
            access_key = self.settings["access_key"]
            secret_key = self.settings["secret_access_key"]
            token = self.settings["session_token"]
        if not verify:
            return
        auth = headers.get("Authorization")
        if not auth:
            raise ServiceError(400, "MissingAuthenticationTokenException",
                               "Missing Authentication Token")
        algo, _, rest = auth.strip().partition(" ")
        if algo != "AWS4-HMAC-SHA256":
            raise ServiceError(400, "IncompleteSignatureException",
                               "Unsupported signing algorithm %r" % algo)
        parts = {}
        for item in rest.split(","):
            k, sep, v = item.strip().partition("=")
            if not sep or k in parts:
                raise ServiceError(400, "IncompleteSignatureException",
                                   "Malformed Authorization component %r"
                                   % item.strip())
            parts[k] = v
        for k in ("Credential", "SignedHeaders", "Signature"):
            if k not in parts:
                raise ServiceError(400, "IncompleteSignatureException",
                                   "Authorization lacks %s=" % k)
        scope = parts["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            raise ServiceError(400, "IncompleteSignatureException",
                               "Credential %r is not KEY/DATE/REGION/"
                               "SERVICE/aws4_request" % parts["Credential"])
        key_id, scope_date, scope_region, scope_service, _ = scope
        signed = parts["SignedHeaders"].split(";")
        if signed != sorted(set(signed)) or any(
                n != n.lower() or not n for n in signed):
            raise ServiceError(400, "IncompleteSignatureException",
                               "SignedHeaders must be lowercase, sorted "
                               "and unique: %r" % parts["SignedHeaders"])
        wanted = list(REQUIRED_SIGNED)
        if headers.get("X-Amz-Security-Token") is not None:
            wanted.append("x-amz-security-token")
        if headers.get("X-Amz-Content-SHA256") is not None:
            wanted.append("x-amz-content-sha256")
        for name in wanted:
            if name not in signed:
                raise ServiceError(400, "IncompleteSignatureException",
                                   "Header %r must be signed" % name)
        for name in signed:
            if headers.get(name) is None:
                raise ServiceError(400, "IncompleteSignatureException",
                                   "Signed header %r is not in the request"
                                   % name)

        if key_id != access_key:
            raise ServiceError(400, "UnrecognizedClientException",
                               "The security token included in the request "
                               "is invalid: access key %r is unknown"
                               % key_id)
        sent_token = headers.get("X-Amz-Security-Token")
        if token is not None and sent_token is None:
            raise ServiceError(400, "UnrecognizedClientException",
                               "The security token included in the request "
                               "is invalid: these credentials need "
                               "X-Amz-Security-Token")
        if sent_token is not None and not hmac.compare_digest(
                sent_token, token or ""):
            raise ServiceError(400, "UnrecognizedClientException",
                               "The security token included in the request "
                               "is invalid")

        amz_date = headers.get("X-Amz-Date", "")
        if not AMZ_DATE_RE.match(amz_date):
            raise ServiceError(400, "IncompleteSignatureException",
                               "X-Amz-Date %r is not YYYYMMDDTHHMMSSZ"
                               % amz_date)
        try:
            when = datetime.datetime.strptime(
                amz_date, "%Y%m%dT%H%M%SZ").replace(
                    tzinfo=datetime.timezone.utc)
        except ValueError:
            raise ServiceError(400, "IncompleteSignatureException",
                               "X-Amz-Date %r is not a date" % amz_date)
        now = _amz_now()
        fmt = "%Y%m%dT%H%M%SZ"
        if when < now - CLOCK_SKEW:
            raise ServiceError(400, "InvalidSignatureException",
                               "Signature expired: %s is now earlier than "
                               "%s (%s - 5 min.)"
                               % (amz_date, (now - CLOCK_SKEW).strftime(fmt),
                                  now.strftime(fmt)))
        if when > now + CLOCK_SKEW:
            raise ServiceError(400, "InvalidSignatureException",
                               "Signature not yet current: %s is still "
                               "later than %s (%s + 5 min.)"
                               % (amz_date, (now + CLOCK_SKEW).strftime(fmt),
                                  now.strftime(fmt)))
        if scope_date != amz_date[:8]:
            raise ServiceError(400, "InvalidSignatureException",
                               "Credential scope date %s does not match "
                               "X-Amz-Date %s" % (scope_date, amz_date))
        if scope_region != self.region:
            raise ServiceError(400, "InvalidSignatureException",
                               "Credential should be scoped to a valid "
                               "region: expected %r, got %r"
                               % (self.region, scope_region))
        if scope_service != SERVICE:
            raise ServiceError(400, "InvalidSignatureException",
                               "Credential should be scoped to service "
                               "%r, got %r" % (SERVICE, scope_service))

        digest = hashlib.sha256(body).hexdigest()
        claimed = headers.get("X-Amz-Content-SHA256")
        if claimed is not None and claimed != digest:
            raise ServiceError(400, "InvalidSignatureException",
                               "Payload hash mismatch: X-Amz-Content-SHA256 "
                               "is %s but the body hashes to %s"
                               % (claimed, digest))

        request = AWSRequest(method=method,
                             url="%s://%s%s" % (scheme, host, path),
                             data=body)
        request.headers = headers
        request.context["timestamp"] = amz_date
        signer = _VerifyingSigner(
            Credentials(access_key, secret_key, token), self.region, signed)
        creq = signer.canonical_request(request)
        sts = signer.string_to_sign(request, creq)
        expected = signer.signature(sts, request)
        if not hmac.compare_digest(expected, parts["Signature"]):
            raise ServiceError(400, "InvalidSignatureException",
                               "Signature mismatch: the signature computed "
                               "for this request differs from the one in "
                               "the Authorization header (check the secret "
                               "key and the signing steps). Canonical "
                               "request was\n%s\nString to sign was\n%s"
                               % (creq, sts))

    # -- the API -----------------------------------------------------------

    def _decode_records(self, entries, field):
        if not isinstance(entries, list):
            raise ServiceError(400, "SerializationException",
                               "%s must be a list" % field)
        out = []
        problems = []
        total = 0
        for i, entry in enumerate(entries, 1):
            if not isinstance(entry, dict) or not isinstance(
                    entry.get("Data"), str):
                raise ServiceError(400, "SerializationException",
                                   "%s.%d must be an object with a string "
                                   "Data" % (field, i))
            try:
                data = base64.b64decode(entry["Data"], validate=True)
            except (binascii.Error, ValueError) as e:
                raise ServiceError(400, "SerializationException",
                                   "%s.%d.Data can not be converted to a "
                                   "Blob: %s" % (field, i, e))
            if len(data) > MAX_RECORD_BYTES:
                problems.append(
                    "Value of %d bytes at 'records.%d.member.data' failed "
                    "to satisfy constraint: Member must have length less "
                    "than or equal to %d" % (len(data), i, MAX_RECORD_BYTES))
            total += len(data)
            out.append(data)
        return out, problems, total

    def _check_stream(self, name, problems):
        if not isinstance(name, str) or not STREAM_NAME_RE.match(name):
            problems.insert(0, "Value %r at 'deliveryStreamName' failed to "
                               "satisfy constraint: Member must satisfy "
                               "regular expression pattern: [a-zA-Z0-9_.-]+ "
                               "and have length between 1 and 64"
                               % (name,))

    def put_record_batch(self, req):
        if "DeliveryStreamName" not in req or "Records" not in req:
            raise ServiceError(400, "ValidationException",
                               "DeliveryStreamName and Records are required")
        records, problems, total = self._decode_records(req["Records"],
                                                        "Records")
        name = req["DeliveryStreamName"]
        self._check_stream(name, problems)
        if len(records) > MAX_RECORDS:
            problems.insert(0, "Value with %d members at 'records' failed "
                               "to satisfy constraint: Member must have "
                               "length less than or equal to %d"
                               % (len(records), MAX_RECORDS))
        if not records:
            problems.insert(0, "Value with 0 members at 'records' failed to "
                               "satisfy constraint: Member must have length "
                               "greater than or equal to 1")
        self._raise_validation(problems)
        if total > MAX_CALL_BYTES:
            raise ServiceError(400, "InvalidArgumentException",
                               "Records size exceeds 4 MB limit: %d bytes "
                               "of data in this call" % total)
        self._check_known(name)

        with self.lock:
            nth = self.settings["fail_every_nth_record"]
            failed = []
            for _ in records:
                self.record_counter += 1
                failed.append(nth > 0 and self.record_counter % nth == 0)
        responses = []
        kept = []
        n_rejected = 0
        for data, bad in zip(records, failed):
            why = self.reject_reason(data)
            if why is not None:
                n_rejected += 1
                responses.append({"ErrorCode": "InvalidArgumentException",
                                  "ErrorMessage": why})
            elif bad:
                responses.append({"ErrorCode": "ServiceUnavailableException",
                                  "ErrorMessage": "Slow down."})
            else:
                responses.append({"RecordId": self._record_id()})
                kept.append(data)
        with self.lock:
            self.stats["records_rejected"] += n_rejected
        return name, kept, {
            "FailedPutCount": len(records) - len(kept),
            "Encrypted": False,
            "RequestResponses": responses,
        }, len(records) - len(kept)

    def put_record(self, req):
        if "DeliveryStreamName" not in req or "Record" not in req:
            raise ServiceError(400, "ValidationException",
                               "DeliveryStreamName and Record are required")
        records, problems, _ = self._decode_records([req["Record"]],
                                                    "Record")
        name = req["DeliveryStreamName"]
        self._check_stream(name, problems)
        self._raise_validation(problems)
        self._check_known(name)
        with self.lock:
            nth = self.settings["fail_every_nth_record"]
            self.record_counter += 1
            bad = nth > 0 and self.record_counter % nth == 0
        if bad:
            with self.lock:
                self.stats["records_failed"] += 1
            raise ServiceError(500, "ServiceUnavailableException",
                               "Slow down.")
        return name, records, {"RecordId": self._record_id(),
                               "Encrypted": False}, 0

    @staticmethod
    def _raise_validation(problems):
        if problems:
            n = len(problems)
            raise ServiceError(400, "ValidationException",
                               "%d validation error%s detected: %s"
                               % (n, "" if n == 1 else "s",
                                  "; ".join(problems)))

    def _check_known(self, name):
        if name not in self.streams:
            raise ServiceError(400, "ResourceNotFoundException",
                               "Firehose %s under account 000000000000 not "
                               "found." % name)

    @staticmethod
    def _record_id():
        return base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes
                                ).decode("ascii").rstrip("=")

    def store(self, stream, records):
        """Write one call's accepted records as one durable object."""
        if not records:
            return None
        data = b"".join(records)
        now = datetime.datetime.now(datetime.timezone.utc)
        rel = "%s%s" % (self.prefix, now.strftime("%Y/%m/%d/%H"))
        name = "%s-1-%s-%s" % (stream, now.strftime("%Y-%m-%d-%H-%M-%S"),
                               uuid.uuid4())
        final_dir = os.path.join(self.out_dir, rel)
        tmp = os.path.join(self.tmp_dir, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        _makedirs_durable(final_dir)
        final = os.path.join(final_dir, name)
        os.rename(tmp, final)
        if self.fsync:
            _fsync_dir(final_dir)
        with self.lock:
            self.stats["objects"] += 1
            self.stats["bytes_stored"] += len(data)
            self.stats["newlines_stored"] += data.count(b"\n")
        return final


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "firehose-receiver"
    # An idle keep-alive connection is closed after this many seconds.
    timeout = 300

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 (base class name)
        if self.server.verbose:
            sys.stderr.write("receiver: %s\n" % (format % args))

    def _send(self, status, body, content_type=CONTENT_TYPE, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status, obj, **kw):
        self._send(status, json.dumps(obj, separators=(",", ":")).encode(),
                   **kw)

    def _refuse(self, err):
        state = self.server.state
        state.count_refused(err.error_type)
        first = err.message.split("\n", 1)[0]
        sys.stderr.write("receiver: refused %s %d %s: %s\n"
                         % (self.client_address[0], err.status,
                            err.error_type, first))
        sys.stderr.flush()
        self._send_json(err.status, {"__type": err.error_type,
                                     "message": err.message})

    def _read_body(self):
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ServiceError(411, "SerializationException",
                               "Chunked bodies are not accepted; send "
                               "Content-Length")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise ServiceError(411, "SerializationException",
                               "Content-Length is required")
        n = int(length)
        if n > MAX_BODY_BYTES:
            self.close_connection = True
            raise ServiceError(413, "SerializationException",
                               "Request body of %d bytes is too large" % n)
        body = self.rfile.read(n)
        if len(body) != n:
            self.close_connection = True
            raise _DropConnection()
        return body

    def _reset(self):
        """Close with RST: SO_LINGER with a zero timeout."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            # The socket only closes once no file made from it is open.
            self.rfile.close()
            self.wfile.close()
            self.connection.close()
        except OSError:
            pass
        # The base class flushes wfile after each request.
        self.wfile = io.BytesIO()
        self._was_reset = True

    def finish(self):
        # The socket is gone after a reset: nothing is left to flush.
        if getattr(self, "_was_reset", False):
            return
        super().finish()

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self):
        if self.path == "/_stats":
            self._send_json(200, self.server.state.snapshot(),
                            content_type="application/json")
            return
        self._refuse(ServiceError(404, "UnknownOperationException",
                                  "No such resource %s" % self.path))

    def do_PUT(self):
        self._refuse(ServiceError(404, "UnknownOperationException",
                                  "Only POST / is served"))

    do_DELETE = do_PUT

    def do_POST(self):
        try:
            body = self._read_body()
        except ServiceError as e:
            self._refuse(e)
            return
        except _DropConnection:
            self._drop()
            return
        if self.path == "/_control":
            self._control(body)
            return
        self._api_call(body)

    def _control(self, body):
        try:
            changes = json.loads(body or b"{}")
            settings = self.server.state.control(changes)
        except ValueError as e:
            self._send_json(400, {"error": str(e)},
                            content_type="application/json")
            return
        settings.pop("secret_access_key", None)
        settings.pop("session_token", None)
        self._send_json(200, settings, content_type="application/json")

    def _api_call(self, body):
        state = self.server.state
        with state.lock:
            state.stats["calls"] += 1
        state.wait_unpaused()
        if state.take("reset_connection_next"):
            with state.lock:
                state.stats["reset"] += 1
            self._reset()
            return
        if state.take("stall_next_calls"):
            with state.lock:
                state.stats["stalled"] += 1
                stall = state.settings["stall_ms"]
            time.sleep(stall / 1000.0)
            self._drop()
            return
        if state.take("drop_connection_next"):
            with state.lock:
                state.stats["dropped"] += 1
            self._drop()
            return
        try:
            if self.path != "/":
                raise ServiceError(404, "UnknownOperationException",
                                   "No such resource %s" % self.path)
            state.authenticate(self.command, self.path, self.headers, body,
                               self.server.scheme,
                               self.headers.get("Host", ""))
            target = self.headers.get("X-Amz-Target", "")
            ctype = self.headers.get("Content-Type", "")
            if ctype.split(";")[0].strip() != CONTENT_TYPE:
                raise ServiceError(400, "SerializationException",
                                   "Content-Type must be %s, not %r"
                                   % (CONTENT_TYPE, ctype))
            if target == TARGET_PREFIX + "PutRecordBatch":
                op = state.put_record_batch
            elif target == TARGET_PREFIX + "PutRecord":
                op = state.put_record
            else:
                raise ServiceError(400, "UnknownOperationException",
                                   "Unknown operation %r" % target)
            if state.take("fail_next_calls"):
                with state.lock:
                    status = state.settings["status"]
                    etype = state.settings["type"]
                    msg = state.settings["message"] or "Injected failure."
                raise ServiceError(status, etype, msg)
            if state.throttle_now():
                raise ServiceError(400, "ServiceUnavailableException",
                                   "Slow down.")
            try:
                req = json.loads(body)
            except ValueError as e:
                raise ServiceError(400, "SerializationException",
                                   "Body is not JSON: %s" % e)
            if not isinstance(req, dict):
                raise ServiceError(400, "SerializationException",
                                   "Body must be a JSON object")
            with state.lock:
                delay = state.settings["delay_ms"]
            if delay:
                time.sleep(delay / 1000.0)
            stream, kept, answer, n_failed = op(req)
            state.store(stream, kept)
            with state.lock:
                state.stats["records_accepted"] += len(kept)
                state.stats["records_failed"] += n_failed
            late = state.take("store_then_stall_next")
            garble = not late and state.take("malformed_next_calls")
            if late or garble or state.take("store_then_drop_next"):
                with state.lock:
                    state.stats["stored_unanswered_calls"] += 1
                    state.stats["records_stored_unanswered"] += len(kept)
                    state.stats["newlines_stored_unanswered"] += sum(
                        r.count(b"\n") for r in kept)
                    stall = state.settings["stall_ms"]
                if garble:
                    # Cut off mid-answer: the client cannot tell what
                    # became of each record.
                    text = json.dumps(answer).encode()
                    self._send(200, text[:len(text) // 2])
                    return
                if late:
                    time.sleep(stall / 1000.0)
                    try:
                        self._send_json(200, answer)
                    except OSError:
                        pass
                    return
                self._drop()
                return
            with state.lock:
                state.stats["calls_ok"] += 1
            self._send_json(200, answer)
        except ServiceError as e:
            self._refuse(e)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, state, tls=None, verbose=False):
        self.state = state
        self.verbose = verbose
        self.scheme = "https" if tls else "http"
        self._tls = tls
        self._conns = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def get_request(self):
        conn, addr = super().get_request()
        if self._tls is not None:
            conn = self._tls.wrap_socket(conn, server_side=True,
                                         do_handshake_on_connect=False)
        return conn, addr

    def process_request_thread(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        try:
            if self._tls is not None:
                request.settimeout(_Handler.timeout)
                try:
                    request.do_handshake()
                except (OSError, ssl.SSLError):
                    self.shutdown_request(request)
                    return
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def handle_error(self, request, client_address):
        # A client that went away mid-answer (killed, timed out) is part of
        # what the tests provoke; one line says so without a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            sys.stderr.write("receiver: connection from %s lost: %s\n"
                             % (client_address[0], type(exc).__name__))
            return
        super().handle_error(request, client_address)

    def close_all(self):
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FirehoseReceiver:
    """The receiver as a library: start(), url, control(), stats(), stop()."""

    def __init__(self, out_dir, streams=("audit-events",),
                 region="us-east-1", access_key="AKIDEXAMPLE",
                 secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                 session_token=None, port=0, prefix="", tls_cert=None,
                 tls_key=None, verify=True, fsync=True, verbose=False):
        self.state = ReceiverState(out_dir, streams, region, access_key,
                                   secret_key, session_token, prefix,
                                   verify, fsync)
        tls = None
        if tls_cert:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(tls_cert, tls_key)
        self._server = _Server(("127.0.0.1", port), self.state, tls,
                               verbose)
        self.port = self._server.server_address[1]
        self.url = "%s://127.0.0.1:%d" % (self._server.scheme, self.port)
        self.out_dir = self.state.out_dir
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="firehose-receiver",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        self._server.serve_forever()

    def stop(self):
        self.state.control({"pause": False})
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def control(self, **changes):
        return self.state.control(changes)

    def stats(self):
        return self.state.snapshot()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Local Kinesis Data Firehose receiver (loopback only).")
    ap.add_argument("--port", type=int, default=0,
                    help="TCP port; 0 picks a free one (default)")
    ap.add_argument("--out", required=True,
                    help="directory the delivered objects are written to")
    ap.add_argument("--prefix", default="",
                    help="S3-style key prefix before YYYY/MM/DD/HH/")
    ap.add_argument("--stream", action="append", default=[],
                    help="accepted delivery stream (repeatable; default "
                         "audit-events)")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--access-key", default="AKIDEXAMPLE")
    ap.add_argument("--secret-key",
                    default="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    ap.add_argument("--session-token", default=None)
    ap.add_argument("--tls-cert", default=None)
    ap.add_argument("--tls-key", default=None)
    ap.add_argument("--no-verify", action="store_true",
                    help="skip signature checks (benchmarks only)")
    ap.add_argument("--no-fsync", action="store_true",
                    help="do not fsync objects (benchmarks only)")
    ap.add_argument("--verbose", action="store_true",
                    help="log every request to stderr")
    for key, kind in CONTROL_KEYS.items():
        if kind is int:
            ap.add_argument("--" + key.replace("_", "-"), type=int,
                            default=None, dest="ctl_" + key)
    ap.add_argument("--type", dest="ctl_type", default=None,
                    help="error type for --fail-next-calls")
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")

    rx = FirehoseReceiver(args.out, args.stream or ["audit-events"],
                          args.region, args.access_key, args.secret_key,
                          args.session_token, args.port, args.prefix,
                          args.tls_cert, args.tls_key,
                          verify=not args.no_verify,
                          fsync=not args.no_fsync, verbose=args.verbose)
    initial = {k[4:]: v for k, v in vars(args).items()
               if k.startswith("ctl_") and v is not None}
    try:
        rx.state.control(initial)
    except ValueError as e:
        ap.error(str(e))
    print("listening 127.0.0.1 %d" % rx.port, flush=True)
    try:
        rx.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
