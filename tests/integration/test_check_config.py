# SPDX-License-Identifier: MIT
"""aaasd --check-config: 0 for a good file, 1 and FILE:LINE: for a bad one."""

import re
import subprocess

import pytest

from conftest import daemon_environment, sanitizer_report


def check(build, setup, path):
    build.require_daemon()
    try:
        r = subprocess.run([str(build.aaasd), "--check-config", "-c",
                            str(path)], env=build.env(
                                daemon_environment(setup.home)),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("aaasd --check-config did not finish in 60s")
    err = r.stderr.decode(errors="replace")
    found = sanitizer_report(err)
    assert not found, "sanitizer report %s\n%s" % (found, err)
    return r.returncode, err


def line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError("%r not in config" % needle)


def test_valid_config(build, setup):
    path = setup.config("http://127.0.0.1:9")
    rc, err = check(build, setup, path)
    assert rc == 0, err


def test_valid_config_socket_disabled(build, setup):
    path = setup.config("http://127.0.0.1:9", socket=False, inputs=[
        ("app", {"path": setup.logs / "*.log", "max_line": "4k",
                 "partial_timeout": 500})])
    rc, err = check(build, setup, path)
    assert rc == 0, err


def test_unknown_option(build, setup):
    path = setup.config("http://127.0.0.1:9",
                        top_extra="no_such_option = 42")
    text = path.read_text()
    rc, err = check(build, setup, path)
    assert rc == 1, err
    want = "%s:%d:" % (path, line_of(text, "no_such_option"))
    assert want in err, "expected %r in stderr:\n%s" % (want, err)


def test_missing_firehose_stream(build, setup):
    path = setup.config("http://127.0.0.1:9")
    text = path.read_text()
    text = re.sub(r'stream = "[^"]*"\s*', "", text)
    assert "stream =" not in text
    path.write_text(text)
    rc, err = check(build, setup, path)
    assert rc == 1, err
    assert re.search(r"%s:\d+:" % re.escape(str(path)), err), err
    assert "stream" in err, err


def test_bad_format_value(build, setup):
    path = setup.config("http://127.0.0.1:9", inputs=[
        ("app", {"path": setup.logs / "*.log", "format": "yaml"})])
    text = path.read_text()
    rc, err = check(build, setup, path)
    assert rc == 1, err
    # The option and its section are on one line here, so either is it.
    want = "%s:%d:" % (path, line_of(text, '"yaml"'))
    assert want in err, "expected %r in stderr:\n%s" % (want, err)
