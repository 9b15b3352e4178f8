# SPDX-License-Identifier: MIT
"""The Debian package: it builds, lintian finds no error, it installs on
this machine with its user, folders, conffile, units and man pages, the
installed config passes --check-config, and purging removes all of it."""

import grp
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT

CREATED = ("/var/spool/aaas", "/var/lib/aaas", "/var/log/aaas")
SHIPPED = ("/usr/sbin/aaasd", "/usr/sbin/aaasctl", "/etc/aaas.conf",
           "/etc/logrotate.d/aaas", "/lib/systemd/system/aaasd.service",
           "/lib/systemd/system/aaasd.socket",
           "/usr/share/man/man8/aaasd.8.gz",
           "/usr/share/man/man8/aaasctl.8.gz",
           "/usr/share/man/man5/aaas.conf.5.gz")


def run(cmd, cwd=None, timeout=300):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, "%s failed (%d):\n%s\n%s" % (
        " ".join(cmd), p.returncode, p.stdout[-4000:], p.stderr[-4000:])
    return p.stdout + p.stderr


def source_tree(dest):
    """The repository's tracked and new files, without build output."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard",
                            "-z"], cwd=REPO_ROOT, capture_output=True,
                           check=True).stdout.split(b"\0")
    for f in files:
        if not f:
            continue
        src = REPO_ROOT / os.fsdecode(f)
        if not src.is_file():
            continue
        dst = dest / os.fsdecode(f)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def installed():
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "aaas"],
                       capture_output=True, text=True)
    return p.returncode == 0 and "installed" in p.stdout \
        and "not-installed" not in p.stdout


def test_package(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("installing a package needs root")
    for tool in ("dpkg-buildpackage", "lintian", "dh"):
        if not shutil.which(tool):
            pytest.fail("%s is missing (scripts/deps installs it)" % tool)
    if installed():
        run(["dpkg", "--purge", "aaas"])

    tree = tmp_path / "aaas"
    source_tree(tree)
    run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree)
    debs = sorted(tmp_path.glob("aaas_*.deb"))
    assert len(debs) == 1, list(tmp_path.iterdir())
    changes = next(tmp_path.glob("aaas_*.changes"))

    lint = subprocess.run(["lintian", "--fail-on", "error", str(changes)],
                          capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert not [ln for ln in lint.stdout.splitlines()
                if ln.startswith("E:")], lint.stdout

    try:
        run(["dpkg", "-i", str(debs[0])])
        assert installed()
        user = pwd.getpwnam("aaas")
        group = grp.getgrnam("aaas")
        assert user.pw_gid == group.gr_gid
        assert user.pw_uid < 1000, "aaas is not a system user"
        for f in SHIPPED:
            assert os.path.exists(f), "%s not installed" % f
        for d in CREATED:
            st = os.stat(d)
            assert st.st_uid == user.pw_uid and st.st_gid == group.gr_gid, d
            assert stat.S_IMODE(st.st_mode) == 0o750, d
        st = os.stat("/etc/aaas.conf")
        assert st.st_gid == group.gr_gid and stat.S_IMODE(st.st_mode) == \
            0o640
        conffiles = Path("/var/lib/dpkg/info/aaas.conffiles").read_text()
        assert "/etc/aaas.conf" in conffiles.split()

        out = run(["/usr/sbin/aaasd", "--check-config", "-c",
                   "/etc/aaas.conf"])
        assert "configuration '/etc/aaas.conf' is valid" in out
        # The service's user can read it too.
        out = run(["setpriv", "--reuid=aaas", "--regid=aaas",
                   "--clear-groups", "/usr/sbin/aaasd", "--check-config",
                   "-c", "/etc/aaas.conf"])
        assert "is valid" in out

        verify = subprocess.run(
            ["systemd-analyze", "verify", "/lib/systemd/system/aaasd.service",
             "/lib/systemd/system/aaasd.socket"],
            capture_output=True, text=True, timeout=120)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        noise = [ln for ln in verify.stderr.splitlines()
                 if "aaasd" in ln]
        assert not noise, "\n".join(noise)
    finally:
        if installed() or os.path.exists("/var/lib/dpkg/info/aaas.list"):
            run(["dpkg", "--purge", "aaas"])

    assert not installed()
    for f in SHIPPED + CREATED:
        assert not os.path.exists(f), "%s left after purge" % f
    with pytest.raises(KeyError):
        pwd.getpwnam("aaas")
    with pytest.raises(KeyError):
        grp.getgrnam("aaas")
