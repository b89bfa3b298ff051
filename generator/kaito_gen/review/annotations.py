"""Diagnostics where the reviewer looks: GitHub workflow commands and SARIF 2.1.0.

* :func:`github_commands`: ``::error file=F,line=L,col=C,title=T::message`` lines, one per
  diagnostic, escaped as the Actions runner expects (``%``, CR and LF in the message; also ``:`` and
  ``,`` in properties), so errors appear on the Workspace's lines of the pull request;
* :func:`sarif_log`: a SARIF 2.1.0 log for code scanning (``github/codeql-action/upload-sarif``):
  one rule per diagnostic code, results with level, message and a physical location whose URI is
  relative to the repository root.

Pure: both take the diagnostics as collected; they never change what is reported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from kaito_gen import __version__
from kaito_gen.core.errors import Diagnostic, format_path, sorted_diagnostics

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
DEFAULT_RULE = "kaito-gen"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def repo_relative(file: str, root: Path) -> str:
    """The file as a POSIX path relative to ROOT when it lies below it, else as given."""
    path = Path(file)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()
    return PurePosixPath(path.as_posix()).as_posix().removeprefix("./")


def _message(d: Diagnostic) -> str:
    where = format_path(d.path)
    text = f"{where}: {d.message}" if where else d.message
    return f"{text}\nhint: {d.hint}" if d.hint else text


def github_commands(diags: Sequence[Diagnostic], root: Path) -> str:
    lines = []
    for d in sorted_diagnostics(diags):
        # A failure outside any file (a usage error) has no file: the annotation goes on the run.
        props = [f"file={escape_property(repo_relative(d.pos.file, root))}"] if d.pos.file else []
        if d.pos.file and d.pos.line > 0:
            props.append(f"line={d.pos.line}")
            if d.pos.col > 0:
                props.append(f"col={d.pos.col}")
        props.append(f"title={escape_property('kaito-gen ' + (d.code or d.severity.value))}")
        lines.append(f"::{d.severity.value} {','.join(props)}::{escape_data(_message(d))}")
    return "".join(f"{line}\n" for line in lines)


def sarif_log(diags: Sequence[Diagnostic], root: Path) -> dict[str, Any]:
    ordered = sorted_diagnostics(diags)
    rule_ids = sorted({d.code or DEFAULT_RULE for d in ordered})
    index = {rule: i for i, rule in enumerate(rule_ids)}
    rules = [
        {"id": rule, "name": rule, "shortDescription": {"text": f"kaito-gen check {rule}"}}
        for rule in rule_ids
    ]
    results = []
    for d in ordered:
        rule = d.code or DEFAULT_RULE
        physical: dict[str, Any] = {
            "artifactLocation": {"uri": quote(repo_relative(d.pos.file, root)), "uriBaseId": "%SRCROOT%"}
        }
        if d.pos.line > 0:
            physical["region"] = {"startLine": d.pos.line, "startColumn": max(d.pos.col, 1)}
        result: dict[str, Any] = {
            "ruleId": rule,
            "ruleIndex": index[rule],
            "level": "error" if d.is_error else "warning",
            "message": {"text": _message(d)},
        }
        if d.pos.file:
            result["locations"] = [{"physicalLocation": physical}]
        results.append(result)
    driver = {"name": "kaito-gen", "version": __version__, "rules": rules}
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "results": results, "columnKind": "unicodeCodePoints"}],
    }


def render_annotations(fmt: str, diags: Sequence[Diagnostic], root: Path) -> str:
    """``github`` or ``sarif`` text for stdout."""
    if fmt == "github":
        return github_commands(diags, root)
    return json.dumps(sarif_log(diags, root), indent=2, sort_keys=True) + "\n"


ANNOTATION_FORMATS = ("github", "sarif")
