# SPDX-License-Identifier: MIT
"""The man pages render without a warning under mandoc and groff, and
aaas.conf(5) documents every option the config parser accepts."""

import re
import shutil
import subprocess

import pytest

from conftest import REPO_ROOT

MAN = REPO_ROOT / "man"
PAGES = sorted(p for p in MAN.glob("*.[1-8]"))


def test_pages_exist():
    names = {p.name for p in PAGES}
    for want in ("aaasd.8", "aaas.conf.5", "aaasctl.8"):
        assert want in names, "man/%s is missing" % want


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_mandoc_lint(page):
    if not shutil.which("mandoc"):
        pytest.fail("mandoc is not installed (scripts/deps installs it)")
    p = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", str(page)],
                       capture_output=True, text=True)
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 0 and not out, out


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_groff_warnings(page):
    p = subprocess.run(["groff", "-ww", "-z", "-mandoc", "-Tutf8",
                        str(page)], capture_output=True, text=True)
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr


def _schema_options():
    """(section, option) pairs from config_schema_new() in src/config.c."""
    src = (REPO_ROOT / "src" / "config.c").read_text()
    body = src[src.index("config_schema_new(void)"):]
    body = body[:body.index("cfg_init(")]
    out = set()
    section = None
    for line in body.splitlines():
        m = re.match(r"\s*cfg_opt_t (\w+)_opts\[\]", line)
        if m:
            section = m.group(1)
            continue
        m = re.search(r'CFG_(?:STR|INT|BOOL)(?:_CB)?\("(\w+)"', line)
        if m and section is not None:
            out.add((None if section == "" else section, m.group(1)))
        m = re.match(r"\s*cfg_opt_t opts\[\]", line)
        if m:
            section = ""
    return out


def test_conf_page_lists_every_option():
    text = (MAN / "aaas.conf.5").read_text()
    options = _schema_options()
    assert len(options) > 20, options
    # Each section's options follow its ".Ss" heading.
    parts = re.split(r"^\.Ss ", text, flags=re.M)
    by_heading = {}
    for part in parts[1:]:
        heading, _, rest = part.partition("\n")
        by_heading[heading] = set(re.findall(r"^\.It Ic (\w+)", rest,
                                             flags=re.M))
    missing = []
    for section, opt in sorted(options, key=lambda x: (x[0] or "", x[1])):
        if section is None:
            documented = by_heading.get("Global options", set())
        elif section == "input":
            documented = by_heading.get("Input sections", set())
        else:
            documented = by_heading.get("The %s section" % section, set())
        if opt not in documented:
            missing.append("%s.%s" % (section or "(top)", opt))
    assert not missing, "aaas.conf(5) does not document: %s" % missing
