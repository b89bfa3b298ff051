"""The canonical YAML writer: every output reads back to exactly the input, with two libraries."""

from __future__ import annotations

import io

import pytest
import yaml
from kaito_gen.core.yamlout import dump, scalar
from ruamel.yaml import YAML

TRICKY_STRINGS = [
    "", " ", "a b", "yes", "No", "ON", "off", "y", "N", "true", "False", "null", "~", "NULL",
    "1", "0.5", "1.0", "1e3", "0x10", "0o17", "012", "16Gi", "2026-01-01", "1:30", "-1", "+1", ".5", ".inf", ".nan",
    "-", "--", "---", "--model", "-x", "- x", "a: b", "a:b", "a #b", "#c", "key:", "*alias", "&anchor", "!tag",
    "%x", "@x", "`x", "{x}", "[x]", "x, y", "'q'", '"q"', "a\\b", "tab\there", "line\nbreak", "trailing\n",
    "two\n\n", "multi\nline\ntext", " lead", "trail ", "ünïcödé", "emoji 😀", "\x00nul", "\x7fdel", "\u2028sep",
    "café: bar", "a\r\nb", "/path/to/x", "kaito.sh/workspace", "nvidia.com/gpu", ".dockerconfigjson",
    "http://example.com/a?b=c", "<x>", "x|y", "x>y", "?", "? x", ": x", "=", "a=b", "0", "00", "1_000",
]  # fmt: skip


def _load_both(text: str) -> tuple[object, object]:
    return yaml.safe_load(text), YAML(typ="safe", pure=True).load(io.StringIO(text))


@pytest.mark.parametrize("text", TRICKY_STRINGS, ids=[repr(s)[:30] for s in TRICKY_STRINGS])
def test_string_round_trips(text: str) -> None:
    doc = {"k": text, text or "empty": "v", "list": [text, {"n": text}]}
    out = dump(doc)
    for loaded in _load_both(out):
        assert loaded == doc, out


@pytest.mark.parametrize(
    "value",
    [0, -1, 10**20, 1.5, -0.0, 1e20, 1e-7, True, False, None],
    ids=lambda v: repr(v),
)
def test_scalars_round_trip(value: object) -> None:
    doc = {"v": value, "l": [value]}
    for loaded in _load_both(dump(doc)):
        assert loaded == doc


def test_structure_and_style() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": {}},
        "data": {"config.yaml": "a: 1\nb: [2]\n"},
        "list": [],
        "nested": [[1, 2], [{"a": 1, "b": {"c": [3]}}]],
    }
    out = dump(doc)
    assert out.endswith("\n") and not out.endswith("\n\n")
    assert "labels: {}" in out and "list: []" in out
    assert "config.yaml: |\n    a: 1\n    b: [2]\n" in out
    for loaded in _load_both(out):
        assert loaded == doc


def test_quantities_and_versions_are_quoted() -> None:
    out = dump({"memory": "16Gi", "version": "0.1.0", "port": "5000", "name": "phi-3"})
    assert 'memory: "16Gi"' in out and 'version: "0.1.0"' in out and 'port: "5000"' in out
    assert "name: phi-3" in out


def test_unsupported_type_is_rejected() -> None:
    with pytest.raises(TypeError):
        scalar(object())
