# SPDX-License-Identifier: MIT
"""A daemon with the wrong secret is refused and keeps its events spooled."""

import http.client
import json

from conftest import (ACCESS_KEY, SECRET_KEY, assert_exactly_once, check_meta,
                      daemon_environment, delivered, duplicates, jline,
                      object_files, wait_for, wait_lines, write_lines)


def spooled_bytes(setup):
    return sum(f.stat().st_size for f in setup.spool.rglob("*") if f.is_file())


def control(receiver, **changes):
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    conn.request("POST", "/_control", body=json.dumps(changes))
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200, body


def _refused_then_fixed(make_daemon, setup, receiver, env, daemon_secret):
    setup.config(receiver.url, socket=False)
    lines = [jline(sig="case", n=i) for i in range(300)]
    d = make_daemon(env).start()
    write_lines(setup.logs / "app.log", lines)
    wait_for(lambda: receiver.stats()["refused"].get(
        "InvalidSignatureException", 0) >= 2, 30,
        "two refused calls", d)
    wait_for(lambda: "InvalidSignatureException" in d.stderr(), 10,
             "the daemon to log InvalidSignatureException", d)
    assert object_files(receiver.out_dir) == []
    assert receiver.stats()["records_accepted"] == 0
    assert spooled_bytes(setup) > 0, "nothing is spooled"
    assert d.alive()

    control(receiver, secret_access_key=daemon_secret)
    wait_lines(receiver, len(lines), d, 60)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    assert_exactly_once(got, lines)
    assert duplicates(got) == 0


def test_wrong_secret_then_fixed(make_daemon, setup, receiver):
    wrong = SECRET_KEY + "-but-wrong"
    env = daemon_environment(setup.home, ACCESS_KEY, wrong)
    _refused_then_fixed(make_daemon, setup, receiver, env, wrong)


def test_session_token_is_sent(make_daemon, setup, tmp_path):
    from conftest import REGION, STREAM, FirehoseReceiver
    rx = FirehoseReceiver(tmp_path / "tok-out", streams=[STREAM],
                          region=REGION, access_key=ACCESS_KEY,
                          secret_key=SECRET_KEY,
                          session_token="FwoGZXIvYXdzEXAMPLETOKEN//+=").start()
    try:
        setup.config(rx.url, socket=False)
        lines = [jline(tok=i) for i in range(200)]
        env = daemon_environment(setup.home, ACCESS_KEY, SECRET_KEY,
                                 "FwoGZXIvYXdzEXAMPLETOKEN//+=")
        d = make_daemon(env).start()
        write_lines(setup.logs / "app.log", lines)
        wait_lines(rx, len(lines), d, 60)
        d.stop()
        got = delivered(rx.out_dir)
        assert rx.stats()["refused"] == {}
    finally:
        rx.stop()
    check_meta(got)
    assert_exactly_once(got, lines)
