"""checkov (pinned in the Makefile, its own venv .venv-checkov) over every golden bundle.

One checkov run scans a copy of all tests/golden/*/expected trees plus a canary bundle that must
fail, offline (--skip-download). Every failed check must match an entry of
tests/checkov-allowlist.yaml, each of which states its reason; an entry that matches nothing
fails too, so the list cannot outlive the problem it excuses. A missing venv is a failure, never
a skip: `make .venv-checkov/.done` builds it.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
ALLOWLIST = ROOT / "tests" / "checkov-allowlist.yaml"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CANARY = "_canary"
# Cases that pin their images by digest and name their SKU: no allow-list entry may excuse them.
CLEAN_CASES = {"digests"}
# A pod with none of the hardening: the checks below must all be reported for it.
CANARY_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: canary
  namespace: default
spec:
  containers:
  - name: c
    image: example.com/canary:1.0
"""
CANARY_CHECKS = {
    "CKV_K8S_10",
    "CKV_K8S_11",
    "CKV_K8S_12",
    "CKV_K8S_13",
    "CKV_K8S_21",
    "CKV_K8S_43",
}


def _allowlist() -> list[dict[str, Any]]:
    entries = yaml.safe_load(ALLOWLIST.read_text())
    assert isinstance(entries, list)
    return entries


def test_allowlist_entries_name_a_check_resources_and_a_reason() -> None:
    for entry in _allowlist():
        assert set(entry) == {"check", "resources", "reason"}, entry
        assert str(entry["check"]).startswith(("CKV_K8S_", "CKV2_K8S_")), entry
        assert entry["resources"] and all(isinstance(r, str) and "/" in r for r in entry["resources"]), entry
        assert len(str(entry["reason"]).split()) >= 8, f"{entry['check']}: say why, in a sentence"


def _reports(text: str) -> list[dict[str, Any]]:
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = decoder.raw_decode(text, i)
        out.extend(doc if isinstance(doc, list) else [doc])
    return out


def _scan(tmp_path: Path) -> list[tuple[str, str, str]]:
    """(case, check id, resource) of every failed check."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make .venv-checkov/.done`")
    tree = tmp_path / "scan"
    cases = sorted(p.parent.name for p in GOLDEN.glob("*/expected") if p.is_dir())
    assert len(cases) >= 10
    for case in cases:
        shutil.copytree(GOLDEN / case / "expected", tree / case)
    (tree / CANARY).mkdir()
    (tree / CANARY / "pod.yaml").write_text(CANARY_POD)
    result = subprocess.run(
        [
            str(CHECKOV),
            "--framework",
            "kubernetes",
            "-d",
            str(tree),
            "--output",
            "json",
            "--skip-download",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = _reports(result.stdout)
    assert reports and all(r.get("check_type") == "kubernetes" for r in reports), result.stdout[:500]
    assert sum(r["summary"]["parsing_errors"] for r in reports) == 0
    failed = []
    for report in reports:
        for check in report["results"]["failed_checks"]:
            case = check["file_path"].strip("/").split("/")[0]
            failed.append((case, check["check_id"], check["resource"]))
    return failed


def test_golden_bundles_pass_checkov(tmp_path: Path) -> None:
    failed = _scan(tmp_path)
    canary = {check for case, check, _ in failed if case == CANARY}
    assert canary >= CANARY_CHECKS, f"checkov missed failures in the canary: {sorted(CANARY_CHECKS - canary)}"
    entries = _allowlist()
    used = [False] * len(entries)
    unexplained = []
    for case, check, resource in failed:
        if case == CANARY:
            continue
        hits = [
            i
            for i, e in enumerate(entries)
            if e["check"] == check
            and any(fnmatch.fnmatchcase(f"{case}/{resource}", r) for r in e["resources"])
        ]
        for i in hits:
            used[i] = True
        if not hits:
            unexplained.append(f"{case}: {check} {resource}")
    clean = [f"{case}: {check} {resource}" for case, check, resource in failed if case in CLEAN_CASES]
    assert not clean, "cases that must pass every check:\n" + "\n".join(sorted(clean))
    assert not unexplained, "checkov failures outside tests/checkov-allowlist.yaml:\n" + "\n".join(
        sorted(unexplained)
    )
    stale = [f"{e['check']} {e['resources']}" for e, u in zip(entries, used, strict=True) if not u]
    assert not stale, "allow-list entries that match no failure (remove them):\n" + "\n".join(stale)
