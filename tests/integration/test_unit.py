# SPDX-License-Identifier: MIT
"""Each cmocka unit test binary of each build, as one pytest case."""

import subprocess

import pytest

from conftest import BUILDS, sanitizer_report


def _cases():
    cases = []
    for b in BUILDS:
        tests = b.unit_tests()
        if not tests:
            cases.append(pytest.param(b, None, id="%s-none" % b.id))
        for t in tests:
            cases.append(pytest.param(b, t, id="%s-%s" % (b.id, t.name)))
    return cases


@pytest.mark.parametrize("unit_build,binary", _cases())
def test_unit(unit_build, binary):
    if binary is None:
        msg = "no tests/unit/test_* binaries in %s" % unit_build.path
        if unit_build.explicit:
            pytest.fail(msg)
        pytest.skip(msg + " (run make check first)")
    try:
        r = subprocess.run([str(binary)], cwd=str(unit_build.path),
                           env=unit_build.env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=300)
    except subprocess.TimeoutExpired as e:
        pytest.fail("%s did not finish in 300s\n%s"
                    % (binary, (e.stdout or b"").decode(errors="replace")))
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, "%s exited with %d\n%s" % (
        binary.name, r.returncode, out)
    found = sanitizer_report(out)
    assert not found, "sanitizer report %s\n%s" % (found, out)
