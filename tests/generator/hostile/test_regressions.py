"""Hostile input: each crash, hang or unpositioned refusal found so far (issue 12), with its diagnostic."""

from __future__ import annotations

from pathlib import Path

import pytest
from kaito_gen.compiler.load import load
from kaito_gen.core.limits import Limits
from kaito_gen.core.yamlsrc import parse_documents

BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
)

CASES = [
    # (id, bytes, code, line, col, message fragment)
    (
        "deep-block",
        ("a:\n" + "".join("  " * i + f"b{i}:\n" for i in range(1, 200))).encode(),
        "limit-depth",
        65,
        129,
        "nesting deeper than 64",
    ),
    ("deep-flow", b"[" * 100_000 + b"]" * 100_000, "limit-depth", 1, 65, "nesting deeper than 64"),
    ("deep-flow-with-aliases", b"a: &a " + b"[" * 5000 + b"*a", "limit-depth", 1, 70, "nesting deeper"),
    ("recursive-alias", b"a: &a\n  b: *a\n", "yaml-recursive-alias", 2, 6, "recursive alias *a"),
    ("recursive-alias-flow", b"&a [*a]\n", "yaml-recursive-alias", 1, 5, "recursive alias"),
    ("billion-laughs", BOMB.encode(), "limit-nodes", 6, 8, "aliases expand"),
    ("tagged-hex-int", b"a: !!int 0xZZ\n", "yaml-tag", 1, 4, "'0xZZ' is not a valid !!int"),
    ("tagged-float", b"a: !!float abc\n", "yaml-tag", 1, 4, "not a valid !!float"),
    ("float-overflow", b"a: 1e999\n", "limit-number", 1, 4, "too large"),
    ("huge-int", b"a: 1" + b"9" * 5000 + b"\n", "limit-number", 1, 4, "too large"),
    ("tagged-huge-hex", b"a: !!int 0x" + b"f" * 5000 + b"\n", "limit-number", 1, 4, "too large"),
    (
        "invalid-utf8",
        "a: caf\u00e9\nb: ok\nc: x".encode() + b"\xff\n",
        "encoding",
        3,
        5,
        "invalid UTF-8: byte 0xff",
    ),
    ("control-character", b"a: b\nc: d\x07e\n", "control-character", 2, 5, "U+0007"),
    ("nul-byte", b"kind: Workspace\nx: \x00\n", "control-character", 2, 4, "U+0000"),
    ("empty-file", b"", "empty-file", 1, 1, "no YAML documents found"),
    ("only-comments", b"# nothing\n\n", "empty-file", 1, 1, "no YAML documents found"),
    ("duplicate-key", b"a: 1\nb: 2\na: 3\n", "yaml-duplicate-key", 3, 1, "duplicate key 'a'"),
    ("unknown-tag", b"a: !foo x\n", "yaml-tag", 1, 4, "'!foo' does not apply"),
    ("binary-tag", b"a: !!binary aGk=\n", "yaml-tag", 1, 4, "does not apply"),
    ("set-tag", b"a: !!set {x}\n", "yaml-tag", 1, 4, "does not apply"),
    ("collection-key", b"? [a, b]\n: c\n", "yaml-key", 1, 3, "plain strings"),
    ("undefined-alias", b"a: *nope\n", "yaml-syntax", 1, 4, ""),
]


@pytest.mark.parametrize(
    ("data", "code", "line", "col", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_file_is_refused_at_its_position(
    tmp_path: Path, data: bytes, code: str, line: int, col: int, fragment: str
) -> None:
    path = tmp_path / "ws.yaml"
    path.write_bytes(data)
    inputs = load([path], base=tmp_path)
    found = [(d.code, d.pos.line, d.pos.col, d.message) for d in inputs.problems]
    assert all(d.pos.file == "ws.yaml" and d.pos.line > 0 and d.pos.col > 0 for d in inputs.problems), found
    assert any(c == code and ln == line and cl == col and fragment in m for c, ln, cl, m in found) or (
        code == "yaml-syntax" and any(ln == line for _, ln, _, _ in found)
    ), found


def test_limits_are_configurable(tmp_path: Path) -> None:
    path = tmp_path / "ws.yaml"
    path.write_text("a:\n  b:\n    c: 1\nd: '" + "x" * 50 + "'\n---\ne: 1\n")
    assert load([path], base=tmp_path).problems == ()
    codes = {
        "max_depth": "limit-depth",
        "max_string": "limit-string",
        "max_documents": "limit-documents",
        "max_nodes": "limit-nodes",
        "max_file_bytes": "limit-file-size",
    }
    small = {"max_depth": 2, "max_string": 10, "max_documents": 1, "max_nodes": 3, "max_file_bytes": 20}
    for name, code in codes.items():
        problems = load([path], base=tmp_path, limits=Limits(**{name: small[name]})).problems
        assert [d.code for d in problems] == [code], (name, problems)
        assert problems[0].pos.line > 0


def test_anchors_and_aliases_still_work_with_positions() -> None:
    docs, problems = parse_documents("f.yaml", "a: &x {k: [1, 2]}\nb: *x\nc: &y 3\nd: *y\n")
    assert problems == []
    assert docs[0].data == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]}, "c": 3, "d": 3}
    assert docs[0].data["a"] is not docs[0].data["b"]
    assert docs[0].positions[("b", "k", 1)] == (1, 15)
    assert docs[0].positions[("b",)] == (2, 1)


def test_config_limits_section_is_validated(tmp_path: Path) -> None:
    from kaito_gen.config import parse_config
    from kaito_gen.core.errors import InputError

    ok = parse_config(
        "kaito-gen.yaml",
        "apiVersion: kaito-gen.io/v1alpha1\nkind: Config\nlimits:\n  maxDepth: 8\n",
        tmp_path,
    )
    assert ok.config.limits.to_limits().max_depth == 8
    with pytest.raises(InputError) as err:
        parse_config(
            "kaito-gen.yaml",
            "apiVersion: kaito-gen.io/v1alpha1\nkind: Config\nlimits:\n  maxDepth: 0\n",
            tmp_path,
        )
    assert err.value.diagnostics[0].pos.line == 4


def test_config_file_read_errors_are_positioned(tmp_path: Path) -> None:
    from kaito_gen.config import load_config
    from kaito_gen.core.errors import InputError

    path = tmp_path / "kaito-gen.yaml"
    path.write_bytes(b"apiVersion: kaito-gen.io/v1alpha1\nkind: \xff\n")
    with pytest.raises(InputError) as err:
        load_config(path, "kaito-gen.yaml")
    (diag,) = err.value.diagnostics
    assert (diag.code, diag.pos.line, diag.pos.col) == ("encoding", 2, 7)
    path.write_bytes(b"# " + b"x" * (300 * 1024))
    with pytest.raises(InputError) as err:
        load_config(path, "kaito-gen.yaml")
    assert [(d.pos.line, d.pos.col) for d in err.value.diagnostics] == [(1, 1)]


def test_unknown_key_with_a_bracket_is_positioned(tmp_path: Path) -> None:
    # Found by `make fuzz` (input 7653): pydantic's union-tag filter dropped the key from the location.
    from kaito_gen.config import parse_config
    from kaito_gen.core.errors import InputError

    with pytest.raises(InputError) as err:
        parse_config(
            "kaito-gen.yaml", "apiVersion: kaito-gen.io/v1alpha1\nkind: Config\nku[ber: '2'\n", tmp_path
        )
    (diag,) = err.value.diagnostics
    assert "ku[ber" in diag.message and diag.pos.line > 0


def test_an_alias_gets_its_own_copy_of_the_anchored_data() -> None:
    docs, problems = parse_documents("a.yaml", "a: &x [1, {b: two}]\nc: *x\n")
    assert not problems
    data = docs[0].data
    assert data["c"] == data["a"] == [1, {"b": "two"}]
    assert data["c"] is not data["a"] and data["c"][1] is not data["a"][1]


def test_an_alias_bomb_is_refused_without_materialising_it() -> None:
    # Nine levels of nine aliases: 9**9 strings if expanded; refused at the alias crossing the node limit.
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    _docs, problems = parse_documents("bomb.yaml", "\n".join(levels) + "\n")
    assert [p.code for p in problems] == ["limit-nodes"], problems
    assert problems[0].pos.line <= 9
