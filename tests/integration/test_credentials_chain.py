# SPDX-License-Identifier: MIT
"""Each credential source, chosen in turn by the chain, signs real calls.

Every test points the daemon at local fakes on 127.0.0.1 (STS, container
endpoint, instance metadata) and the Firehose receiver accepts only the
keys the chosen source issued, so a delivered event proves which source
signed it.
"""

import time

from aws_fakes import EcsFake, ImdsFake, StsFake
from conftest import (ACCESS_KEY, REGION, SECRET_KEY, assert_exactly_once,
                      check_meta, daemon_environment, delivered, jline,
                      wait_for, wait_lines, write_lines)

ROLE_ARN = "arn:aws:iam::123456789012:role/aaas-writer"
WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.fake-web-identity.c2lnbmF0dXJl"
ECS_TOKEN = "ecs-auth-token-0123456789"


def keyless_env(setup, **extra):
    env = daemon_environment(setup.home)
    del env["AWS_ACCESS_KEY_ID"]
    del env["AWS_SECRET_ACCESS_KEY"]
    env.update(extra)
    return env


def deliver(make_daemon, setup, receiver, env, n=40, tag="cred"):
    setup.config(receiver.url, socket=False)
    d = make_daemon(env).start()
    lines = [jline(test=tag, n=i) for i in range(n)]
    write_lines(setup.logs / "app.log", lines)
    wait_lines(receiver, n, d, 60)
    text = d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    assert_exactly_once(got, lines)
    return text


def test_environment_wins_over_later_sources(make_daemon, setup, receiver):
    with ImdsFake() as imds:
        creds = setup.root / "credentials"
        creds.write_text("[default]\naws_access_key_id = AKIAWRONGWRONG\n"
                         "aws_secret_access_key = wrong\n")
        env = daemon_environment(setup.home)
        env.update(AWS_SHARED_CREDENTIALS_FILE=str(creds),
                   AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
        del env["AWS_EC2_METADATA_DISABLED"]
        text = deliver(make_daemon, setup, receiver, env)
        assert imds.calls == []
        assert "using the environment" in text


def test_web_identity(make_daemon, setup, receiver):
    with StsFake(role_arn=ROLE_ARN, web_token=WEB_TOKEN) as sts:
        receiver.control(**sts.keys.receiver_settings())
        tok = setup.root / "web-token"
        tok.write_text(WEB_TOKEN + "\n")
        env = keyless_env(setup, AWS_WEB_IDENTITY_TOKEN_FILE=str(tok),
                          AWS_ROLE_ARN=ROLE_ARN,
                          AWS_ROLE_SESSION_NAME="aaas-it",
                          AWS_ENDPOINT_URL_STS=sts.url)
        deliver(make_daemon, setup, receiver, env)
        assert sts.n_issued() == 1, sts.problems
        assert sts.session_names == ["aaas-it"]


def test_profile_static_keys(make_daemon, setup, receiver):
    creds = setup.root / "credentials"
    creds.write_text("# comment\n[default]\naws_access_key_id = AKIAOTHER\n"
                     "aws_secret_access_key = other\n\n[audit]\n"
                     "aws_access_key_id = %s\naws_secret_access_key = %s\n"
                     % (ACCESS_KEY, SECRET_KEY))
    env = keyless_env(setup, AWS_SHARED_CREDENTIALS_FILE=str(creds),
                      AWS_PROFILE="audit")
    text = deliver(make_daemon, setup, receiver, env)
    assert "using the shared credentials files" in text


def test_profile_role_through_assume_role(make_daemon, setup, receiver):
    source = ("AKIASOURCEKEY0000001", "source/secret+key", None)
    with StsFake(role_arn=ROLE_ARN, source_keys=source,
                 region=REGION) as sts:
        receiver.control(**sts.keys.receiver_settings())
        creds = setup.root / "credentials"
        creds.write_text("[base]\naws_access_key_id = %s\n"
                         "aws_secret_access_key = %s\n" % source[:2])
        config = setup.root / "config"
        config.write_text("[profile writer]\nrole_arn = %s\n"
                          "source_profile = base\n"
                          "s3 =\n  max_concurrent_requests = 4\n"
                          % ROLE_ARN)
        env = keyless_env(setup, AWS_SHARED_CREDENTIALS_FILE=str(creds),
                          AWS_CONFIG_FILE=str(config), AWS_PROFILE="writer",
                          AWS_ENDPOINT_URL=sts.url)
        deliver(make_daemon, setup, receiver, env)
        assert sts.n_issued() == 1, sts.problems


def test_named_profile_missing_is_an_error(make_daemon, setup, receiver):
    env = keyless_env(setup, AWS_PROFILE="nosuch")
    setup.config(receiver.url, socket=False)
    d = make_daemon(env).start()
    write_lines(setup.logs / "app.log", [jline(n=1)])
    wait_for(lambda: "profile 'nosuch' is in neither" in d.stderr(), 20,
             "the missing profile to be reported", d)
    d.stop()
    assert receiver.stats()["calls"] == 0


def test_container_credentials_full_uri(make_daemon, setup, receiver):
    with EcsFake(auth_token=ECS_TOKEN) as ecs:
        receiver.control(**ecs.keys.receiver_settings())
        tokf = setup.root / "ecs-token"
        tokf.write_text(ECS_TOKEN)
        env = keyless_env(
            setup,
            AWS_CONTAINER_CREDENTIALS_FULL_URI=ecs.url + ecs.path,
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(tokf))
        deliver(make_daemon, setup, receiver, env)
        assert ecs.n_issued() == 1, ecs.problems
        assert ecs.problems == []


def test_instance_metadata_v2(make_daemon, setup, receiver):
    with ImdsFake() as imds:
        receiver.control(**imds.keys.receiver_settings())
        env = keyless_env(setup, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
        del env["AWS_EC2_METADATA_DISABLED"]
        deliver(make_daemon, setup, receiver, env)
        assert imds.n_issued() == 1
        # a session token first, and no read went without one
        assert imds.calls[0] == ("PUT", "/latest/api/token")
        assert imds.problems == []


def test_instance_metadata_hop_limit_is_reported(make_daemon, setup,
                                                 receiver):
    with ImdsFake(hang_put=True) as imds:
        env = keyless_env(setup, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
        del env["AWS_EC2_METADATA_DISABLED"]
        setup.config(receiver.url, socket=False)
        d = make_daemon(env).start()
        write_lines(setup.logs / "app.log", [jline(n=1)])
        wait_for(lambda: "HttpPutResponseHopLimit" in d.stderr(), 30,
                 "the hop limit to be named", d)
        d.stop()
        assert receiver.stats()["calls"] == 0


def test_refresh_before_expiry(make_daemon, setup, receiver):
    # 20 s credentials are refreshed halfway through their life.
    with ImdsFake(lifetime=20) as imds:
        receiver.control(**imds.keys.receiver_settings())
        env = keyless_env(setup, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
        del env["AWS_EC2_METADATA_DISABLED"]
        setup.config(receiver.url, socket=False)
        d = make_daemon(env).start()
        lines = []
        deadline = time.monotonic() + 45
        while imds.n_issued() < 2 and time.monotonic() < deadline:
            more = [jline(test="refresh", n=len(lines) + i)
                    for i in range(5)]
            write_lines(setup.logs / "app.log", more, mode="ab")
            lines += more
            time.sleep(1)
        wait_lines(receiver, len(lines), d, 60)
        d.stop()
        assert imds.n_issued() >= 2
        first, second = imds.issued[:2]
        assert 8 <= second - first <= 20, imds.issued
        assert_exactly_once(delivered(receiver.out_dir), lines)


def test_secrets_never_logged(make_daemon, setup, receiver):
    source = ("AKIASOURCEKEY0000002", "source/secret+never+logged", None)
    with StsFake(role_arn=ROLE_ARN, source_keys=source) as sts:
        # First refused as expired, so the retry and refresh paths log too.
        receiver.control(fail_next_calls=1, status=400,
                         type="ExpiredTokenException",
                         **sts.keys.receiver_settings())
        creds = setup.root / "credentials"
        creds.write_text("[base]\naws_access_key_id = %s\n"
                         "aws_secret_access_key = %s\n" % source[:2])
        config = setup.root / "config"
        config.write_text("[profile writer]\nrole_arn = %s\n"
                          "source_profile = base\n" % ROLE_ARN)
        env = keyless_env(setup, AWS_SHARED_CREDENTIALS_FILE=str(creds),
                          AWS_CONFIG_FILE=str(config), AWS_PROFILE="writer",
                          AWS_ENDPOINT_URL_STS=sts.url)
        text = deliver(make_daemon, setup, receiver, env)
        assert sts.n_issued() == 2, sts.problems
        for secret in (source[1], sts.keys.secret_key,
                       sts.keys.session_token):
            assert secret not in text
        assert "ExpiredTokenException" in text
