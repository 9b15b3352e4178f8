# SPDX-License-Identifier: MIT
"""Local stand-ins for the AWS credential services, on 127.0.0.1 only.

StsFake answers AssumeRole (checking its SigV4 signature with botocore)
and AssumeRoleWithWebIdentity (checking the token) in the query API's XML;
EcsFake is the container credentials endpoint (checking the Authorization
token); ImdsFake is EC2 instance metadata with IMDSv2 session tokens,
refusing any read without a valid token.  Each issues one fixed key set
with a fresh Expiration on every call and counts its calls, so a test can
point the Firehose receiver at the keys and watch refreshes happen.
"""

import datetime
import hmac
import http.client
import http.server
import json
import threading
import time
import urllib.parse
import uuid

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def _expiration(lifetime):
    t = datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(seconds=lifetime)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class IssuedKeys:
    """The temporary credentials a fake hands out."""

    def __init__(self, tag, lifetime=3600):
        self.access_key = "ASIA%sFAKE%08d" % (tag.upper()[:4],
                                              uuid.uuid4().int % 10 ** 8)
        self.secret_key = "fake/%s/secret+%s" % (tag, uuid.uuid4().hex)
        self.session_token = "FakeToken//%s//%s" % (tag, uuid.uuid4().hex)
        self.lifetime = lifetime

    def receiver_settings(self):
        return {"access_key": self.access_key,
                "secret_access_key": self.secret_key,
                "session_token": self.session_token}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 (base class name)
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body, ctype="application/json"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.server.fake.handle(self, "GET", b"")

    def do_PUT(self):
        self.server.fake.handle(self, "PUT", self._body())

    def do_POST(self):
        self.server.fake.handle(self, "POST", self._body())


class _Fake:
    def __init__(self, tag, lifetime):
        self.keys = IssuedKeys(tag, lifetime)
        self.lock = threading.Lock()
        self.calls = []         # (method, path) of every request
        self.issued = []        # time.monotonic() of every key set issued
        self.problems = []      # requests refused, and why
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                       _Handler)
        self._server.daemon_threads = True
        self._server.fake = self
        self.port = self._server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _note(self, method, path):
        with self.lock:
            self.calls.append((method, path))

    def _refuse(self, h, status, why, body=None):
        with self.lock:
            self.problems.append(why)
        h._send(status, body if body is not None
                else json.dumps({"message": why}))

    def _issue(self):
        with self.lock:
            self.issued.append(time.monotonic())
        return self.keys

    def n_issued(self):
        with self.lock:
            return len(self.issued)


class _StsSigner(SigV4Auth):
    """Canonicalises exactly the headers the client listed as signed."""

    def __init__(self, credentials, region, signed):
        super().__init__(credentials, "sts", region)
        self._signed = signed

    def headers_to_sign(self, request):
        out = http.client.HTTPMessage()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                out[name] = value
        return out


class StsFake(_Fake):
    """AssumeRole (signed by source_keys) and AssumeRoleWithWebIdentity."""

    def __init__(self, region="us-east-1", lifetime=3600, role_arn=None,
                 web_token=None, source_keys=None):
        super().__init__("sts", lifetime)
        self.region = region
        self.role_arn = role_arn
        self.web_token = web_token
        self.source_keys = source_keys  # (access, secret, token or None)
        self.session_names = []

    def _error(self, h, status, code, message):
        body = ("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/"
                "2011-06-15/\"><Error><Type>Sender</Type><Code>%s</Code>"
                "<Message>%s</Message></Error><RequestId>%s</RequestId>"
                "</ErrorResponse>" % (code, message, uuid.uuid4()))
        self._refuse(h, status, "%s: %s" % (code, message), body)

    def _check_signature(self, h, body):
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return "AssumeRole is not signed"
        parts = dict(p.strip().partition("=")[::2]
                     for p in auth[17:].split(","))
        access, secret, token = self.source_keys
        scope = parts.get("Credential", "").split("/")
        if len(scope) != 5 or scope[0] != access or scope[2] != self.region \
                or scope[3] != "sts":
            return "credential scope %r is wrong" % parts.get("Credential")
        if (h.headers.get("X-Amz-Security-Token") or None) != token:
            return "session token of the source is missing or wrong"
        signed = parts.get("SignedHeaders", "").split(";")
        req = AWSRequest(method="POST", url="http://%s/"
                         % h.headers.get("Host"), data=body)
        req.headers = h.headers
        req.context["timestamp"] = h.headers.get("X-Amz-Date", "")
        signer = _StsSigner(Credentials(access, secret, token), self.region,
                            signed)
        sts = signer.string_to_sign(req, signer.canonical_request(req))
        if not hmac.compare_digest(signer.signature(sts, req),
                                   parts.get("Signature", "")):
            return "signature mismatch"
        return None

    def handle(self, h, method, body):
        self._note(method, h.path)
        if method != "POST" or h.path != "/":
            return self._error(h, 404, "InvalidAction", "POST / only")
        form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
        f = {k: v[0] for k, v in form.items()}
        action = f.get("Action")
        if f.get("Version") != "2011-06-15":
            return self._error(h, 400, "InvalidParameterValue", "Version")
        if self.role_arn and f.get("RoleArn") != self.role_arn:
            return self._error(h, 403, "AccessDenied",
                               "not allowed to assume %s" % f.get("RoleArn"))
        if not f.get("RoleSessionName"):
            return self._error(h, 400, "MissingParameter", "RoleSessionName")
        if action == "AssumeRoleWithWebIdentity":
            if f.get("WebIdentityToken") != self.web_token:
                return self._error(h, 400, "InvalidIdentityToken",
                                   "token is not the expected one")
        elif action == "AssumeRole":
            why = self._check_signature(h, body) if self.source_keys \
                else "no source keys configured"
            if why:
                return self._error(h, 403, "SignatureDoesNotMatch", why)
        else:
            return self._error(h, 400, "InvalidAction", str(action))
        with self.lock:
            self.session_names.append(f["RoleSessionName"])
        k = self._issue()
        xml = ("<%sResponse xmlns=\"https://sts.amazonaws.com/doc/"
               "2011-06-15/\"><%sResult><Credentials>"
               "<AccessKeyId>%s</AccessKeyId>"
               "<SecretAccessKey>%s</SecretAccessKey>"
               "<SessionToken>%s</SessionToken>"
               "<Expiration>%s</Expiration></Credentials>"
               "<AssumedRoleUser><Arn>%s/%s</Arn></AssumedRoleUser>"
               "</%sResult></%sResponse>"
               % (action, action, k.access_key, k.secret_key,
                  k.session_token, _expiration(k.lifetime), f["RoleArn"],
                  f["RoleSessionName"], action, action))
        h._send(200, xml, "text/xml")


class EcsFake(_Fake):
    """The container credentials endpoint at path, behind auth_token."""

    def __init__(self, path="/v2/credentials/task-1", auth_token=None,
                 lifetime=3600):
        super().__init__("ecs", lifetime)
        self.path = path
        self.auth_token = auth_token

    def handle(self, h, method, body):
        self._note(method, h.path)
        if method != "GET" or h.path != self.path:
            return self._refuse(h, 404, "no such path %s" % h.path)
        if self.auth_token is not None and \
                h.headers.get("Authorization") != self.auth_token:
            return self._refuse(h, 401, "wrong or missing Authorization")
        k = self._issue()
        h._send(200, json.dumps({
            "AccessKeyId": k.access_key, "SecretAccessKey": k.secret_key,
            "Token": k.session_token,
            "Expiration": _expiration(k.lifetime),
            "RoleArn": "arn:aws:iam::123456789012:role/task"}))


class ImdsFake(_Fake):
    """IMDSv2: PUT a session token, then GET the role and its keys."""

    ROLE = "aaas-instance-role"
    BASE = "/latest/meta-data/iam/security-credentials/"

    def __init__(self, lifetime=3600, hang_put=False):
        super().__init__("imds", lifetime)
        self.tokens = set()
        # hang_put: the PUT answer never arrives, as with a hop limit of 1
        # seen from a container.
        self.hang_put = hang_put

    def handle(self, h, method, body):
        self._note(method, h.path)
        if method == "PUT" and h.path == "/latest/api/token":
            ttl = h.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if not ttl or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self._refuse(h, 400, "bad or missing token TTL")
            if self.hang_put:
                time.sleep(5)
                return self._refuse(h, 504, "hung")
            tok = "imds-token-" + uuid.uuid4().hex
            with self.lock:
                self.tokens.add(tok)
            return h._send(200, tok, "text/plain")
        if method != "GET":
            return self._refuse(h, 405, "method %s" % method)
        with self.lock:
            ok = h.headers.get("X-aws-ec2-metadata-token") in self.tokens
        if not ok:
            return self._refuse(h, 401, "IMDSv1 read or bad token: %s"
                                % h.path)
        if h.path == self.BASE:
            return h._send(200, self.ROLE, "text/plain")
        if h.path == self.BASE + self.ROLE:
            k = self._issue()
            return h._send(200, json.dumps({
                "Code": "Success", "Type": "AWS-HMAC",
                "AccessKeyId": k.access_key,
                "SecretAccessKey": k.secret_key, "Token": k.session_token,
                "Expiration": _expiration(k.lifetime)}))
        return self._refuse(h, 404, "no such path %s" % h.path)
