# SPDX-License-Identifier: MIT
"""Every JSON-lines file of the shared corpus arrives byte for byte."""

import collections
import csv
import shutil

import pytest

from conftest import (SHARED_DIR, check_meta, delivered, events, rejects,
                      wait_lines)

CORPUS = SHARED_DIR / "corpus"


def json_lines_files():
    """Rows of the README tables whose format column says JSON lines."""
    readme = CORPUS / "README.md"
    if not readme.is_file():
        return []
    out = []
    for line in readme.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 2 and cells[2].startswith("JSON lines"):
            out.append(cells[0].strip("`"))
    return out


def manifest():
    with open(CORPUS / "MANIFEST.tsv", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def split_lines(data):
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    return parts


def test_corpus_selection_matches_manifest():
    files = json_lines_files()
    if not files:
        pytest.skip("no corpus at %s" % CORPUS)
    rows = manifest()
    for rel in files:
        row = rows[rel]
        data = (CORPUS / rel).read_bytes()
        parts = split_lines(data)
        assert int(row["bytes"]) == len(data), rel
        assert int(row["lines"]) == len(parts), rel
        assert (row["final_newline"] == "yes") == data.endswith(b"\n"), rel
        assert int(row["json_objects"]) == sum(1 for p in parts if p), rel


def test_corpus_delivered_byte_for_byte(make_daemon, setup, receiver):
    files = json_lines_files()
    if not files:
        pytest.skip("no corpus at %s" % CORPUS)
    setup.config(receiver.url, socket=False, log_level="info", inputs=[
        ("corpus", {"path": setup.logs / "*.log", "partial_timeout": 500})])
    expected = {}
    empties = {}
    total = 0
    no_final_newline = 0
    for rel in files:
        name = rel.replace("/", "__") + ".log"
        dest = setup.logs / name
        shutil.copyfile(CORPUS / rel, dest)
        parts = split_lines(dest.read_bytes())
        expected[str(dest)] = collections.Counter(p for p in parts if p)
        empties[str(dest)] = sum(1 for p in parts if not p)
        total += len(parts)
        no_final_newline += not dest.read_bytes().endswith(b"\n")
    assert no_final_newline > 0 and sum(empties.values()) > 0
    d = make_daemon().start()
    wait_lines(receiver, total, d, 180)
    d.stop()
    got = delivered(receiver.out_dir)
    check_meta(got)
    assert len(got) == total
    by_path = collections.defaultdict(collections.Counter)
    for ln in events(got):
        assert ln.meta["source"] == "file" and ln.meta["input"] == "corpus"
        by_path[ln.meta["path"]][ln.original] += 1
    for path, want in expected.items():
        have = by_path.pop(path, collections.Counter())
        missing, extra = want - have, have - want
        assert not missing and not extra, (
            "%s: %d missing, %d extra; e.g. %r / %r"
            % (path, sum(missing.values()), sum(extra.values()),
               next(iter(missing), b"")[:200], next(iter(extra), b"")[:200]))
    assert not by_path, "events from unknown paths: %s" % list(by_path)
    empty_rejects = collections.Counter()
    for ln in rejects(got):
        r = ln.reject
        assert "empty line" in r["reason"], r
        assert r.get("raw") == "", r
        empty_rejects[ln.meta["path"]] += 1
    assert empty_rejects == collections.Counter(
        {p: n for p, n in empties.items() if n})
