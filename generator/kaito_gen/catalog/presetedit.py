"""Edit a model preset table's text with ruamel's round-trip mode (pure: text in, text out).

Comments, key order, quoting and blank lines survive; an unchanged table comes back byte for byte.
``upsert_model`` adds a row (in name order when the table is sorted by name, else at the end) or
refreshes the derived fields of the row with the same ``hfRepo``, keeping the reviewed ones;
``set_revision`` pins one row. The CLI edge (``kaito-gen presets add|pin``) reads and writes the file.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarfloat import ScalarFloat
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from kaito_gen.catalog.hfrow import DERIVED_FIELDS, RowRefused

NEW_TABLE = """\
# kaito-gen model preset table (presets/README.md). Rows written by `kaito-gen presets add`.
apiVersion: kaito-gen.io/v1alpha1
kind: ModelPresetTable
models: []
"""


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096
    y.representer.add_representer(
        type(None), lambda r, _d: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return y


def _models(text: str, where: str) -> tuple[YAML, Any, CommentedSeq]:
    y = _yaml()
    try:
        doc = y.load(text)
    except YAMLError as exc:
        raise RowRefused(f"{where}: not valid YAML ({exc.__class__.__name__})", "fix the file first") from exc
    if not isinstance(doc, CommentedMap) or doc.get("kind") != "ModelPresetTable":
        raise RowRefused(f"{where}: not a `kind: ModelPresetTable` file", "pass a model preset table")
    models = doc.get("models")
    if not isinstance(models, CommentedSeq):
        if models is None or models == []:
            models = CommentedSeq()
            doc["models"] = models
        else:
            raise RowRefused(f"{where}: `models` is not a list", "fix the file first")
    return y, doc, models


def _dump(y: YAML, doc: Any) -> str:
    out = io.StringIO()
    y.dump(doc, out)
    return out.getvalue()


def _yaml_value(key: str, value: Any) -> Any:
    if isinstance(value, Decimal):
        text = f"{value:.2f}"
        return ScalarFloat(float(text), width=len(text), prec=text.index("."))
    if key == "revision" and value != "unpinned":
        return DoubleQuotedScalarString(value)
    if isinstance(value, Mapping):
        m = CommentedMap()
        for k, v in value.items():
            m[k] = _yaml_value(k, v)
        return m
    if isinstance(value, list):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    return value


def _same(old: Any, new: Any) -> bool:
    if isinstance(new, Decimal):
        try:
            return Decimal(str(old)) == new
        except ArithmeticError:
            return False
    if isinstance(new, bool) or isinstance(old, bool):
        return old is new
    return bool(old == new)


def _find(models: CommentedSeq, key: str) -> int | None:
    key = key.lower()
    for i, row in enumerate(models):
        if isinstance(row, Mapping) and key in (
            str(row.get("name", "")).lower(),
            str(row.get("hfRepo", "")).lower(),
        ):
            return i
    return None


def upsert_model(text: str | None, row: Mapping[str, Any], where: str) -> tuple[str, str]:
    """(new text, what happened: 'added' | 'updated' | 'unchanged')."""
    y, doc, models = _models(text if text is not None else NEW_TABLE, where)
    index = _find(models, str(row["hfRepo"]))
    if index is not None:
        existing = models[index]
        changed = False
        for key in DERIVED_FIELDS:
            if key not in existing or not _same(existing[key], row[key]):
                existing[key] = _yaml_value(key, row[key])
                changed = True
        return _dump(y, doc), "updated" if changed else "unchanged"
    clash = _find(models, str(row["name"]))
    if clash is not None:
        raise RowRefused(
            f"{where}: preset name {row['name']!r} is already taken by {models[clash].get('hfRepo')}",
            "rename one of the rows by hand; preset names are unique in a table",
        )
    names = [str(r.get("name", "")) for r in models if isinstance(r, Mapping)]
    at = len(models)
    if names and names == sorted(names):
        at = next((i for i, n in enumerate(names) if n > str(row["name"])), len(models))
    if at < len(models):
        # The blank line before row `at` belongs to row at-1 (ruamel keeps it on its last key), so
        # the new row goes in after that gap and gets a gap of its own before the old row.
        models.insert(at, _yaml_value("", row))
        models.yaml_set_comment_before_after_key(at + 1, before="\n", indent=2)
    else:
        models.append(_yaml_value("", row))
        if at > 0:
            models.yaml_set_comment_before_after_key(at, before="\n", indent=2)
    if len(models) == 1:
        models.fa.set_block_style()
    return _dump(y, doc), "added"


def model_rows(text: str, where: str) -> list[tuple[str, str, str]]:
    """(name, hfRepo, revision) of every row."""
    _, _, models = _models(text, where)
    return [
        (str(r.get("name")), str(r.get("hfRepo")), str(r.get("revision")))
        for r in models
        if isinstance(r, Mapping)
    ]


def set_revision(text: str, name: str, sha: str, where: str) -> str:
    y, doc, models = _models(text, where)
    index = _find(models, name)
    if index is None:
        raise RowRefused(f"{where}: no row named {name!r}", "`kaito-gen presets list` shows the rows")
    if models[index].get("revision") != sha:
        models[index]["revision"] = _yaml_value("revision", sha)
    return _dump(y, doc)
