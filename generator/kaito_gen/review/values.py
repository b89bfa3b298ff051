"""Value-level changes of one object, terraform-plan style: ``~ spec.replicas: 1 → 2``.

Pure: :func:`value_changes` compares two parsed documents and returns :class:`ValueChange` records.

* maps are compared key by key; ``+``/``-`` for keys that appear or disappear;
* lists of objects that all carry a unique ``name`` (containers, env, volumes, volumeMounts, ports)
  are matched by name, shown as ``env[HF_HOME].value``, so an insertion is one ``+`` and not a
  shifted list; other lists are compared by index;
* container ``args``/``command`` are read as a command line: the flag that changed is shown
  (``--model: a → b``), in the ``--flag value`` and ``--flag=value`` forms, positional arguments as
  ``#1``, ``#2``…;
* multi-line strings (ConfigMap data, scripts) become a unified diff of the lines that changed;
* Secret data is never shown, nor any hash of it: only which keys changed.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["~", "+", "-"]

MAX_LINE_DIFF = 40  # unified-diff lines shown per multi-line value; the rest are counted
MAX_SHOWN = 200  # characters of one value in text and markdown (json carries it whole)
SECRET_NOTE = "(secret data changed)"
# Where a kind keeps credentials. The last-applied annotation would repeat them.
LAST_APPLIED = "metadata.annotations.kubectl.kubernetes.io/last-applied-configuration"
MASKED: Mapping[str, tuple[str, ...]] = {
    "Secret": ("data", "stringData", LAST_APPLIED),
    "SealedSecret": ("spec.encryptedData", "spec.template.data", LAST_APPLIED),
}
_NUMBER = re.compile(r"^-\d+(\.\d*)?$")


class _Absent:
    """The missing side of an added or removed value."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


@dataclass(frozen=True)
class ValueChange:
    """One changed value. ``old``/``new`` are the parsed values (None for the missing side of a
    ``+``/``-`` and for masked Secret data); ``arg`` names the flag or ``#N`` inside an argument list;
    ``lines`` is the unified diff of a multi-line string."""

    op: Op
    path: str
    old: Any = None
    new: Any = None
    arg: str = ""
    lines: tuple[str, ...] = ()
    more_lines: int = 0
    secret: bool = False

    @property
    def where(self) -> str:
        return f"{self.path} {self.arg}" if self.arg else self.path

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "path": self.path, "secret": self.secret}
        if self.arg:
            out["arg"] = self.arg
        if not self.secret:
            if self.op != "+":
                out["old"] = self.old
            if self.op != "-":
                out["new"] = self.new
        if self.lines:
            out["diff"] = list(self.lines)
            out["moreLines"] = self.more_lines
        return out


def show(value: Any, *, plain: bool = False) -> str:
    """One value for text and markdown: strings bare unless they would read as another type
    (``"1"``, ``"true"``, ``""``), everything else as compact JSON; long values cut with an ellipsis."""
    if isinstance(value, str) and (plain or _reads_as_string(value)):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _reads_as_string(value: str) -> bool:
    if not value or value != value.strip() or "\n" in value or "→" in value:
        return False
    try:
        json.loads(value)
    except ValueError:
        return True
    return False


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _multiline(value: Any) -> bool:
    return isinstance(value, str) and "\n" in value.rstrip("\n")


def _scalar(op: Op, path: str, old: Any, new: Any, arg: str = "") -> ValueChange:
    old_v = None if old is ABSENT else old
    new_v = None if new is ABSENT else new
    if _multiline(old) or _multiline(new):
        before = old if isinstance(old, str) else ""
        after = new if isinstance(new, str) else ""
        hunks = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1))[2:]
        if hunks:
            shown = tuple(hunks[:MAX_LINE_DIFF])
            return ValueChange(op, path, old_v, new_v, arg, shown, len(hunks) - len(shown))
    return ValueChange(op, path, old_v, new_v, arg)


def _named(items: Sequence[Any]) -> dict[str, Any] | None:
    """{name: item} when every item is an object with a unique string name, else None."""
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or item["name"] in out:
            return None
        out[item["name"]] = item
    return out


# --- command lines ------------------------------------------------------------------------------


def _is_flag(token: str) -> bool:
    return token.startswith("-") and token not in ("-", "--") and not _NUMBER.match(token)


def parse_command_line(tokens: Sequence[str]) -> tuple[dict[str, list[str | None]], list[str]]:
    """({flag: [values]}, positional) from ``--flag value``, ``--flag=value`` and bare ``--flag``
    (value None); everything after ``--`` is positional. A repeated flag keeps every value."""
    flags: dict[str, list[str | None]] = {}
    positional: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            positional.extend(tokens[i + 1 :])
            break
        if _is_flag(token):
            name, eq, value = token.partition("=")
            if eq:
                flags.setdefault(name, []).append(value)
            elif i + 1 < len(tokens) and not _is_flag(tokens[i + 1]) and tokens[i + 1] != "--":
                flags.setdefault(name, []).append(tokens[i + 1])
                i += 1
            else:
                flags.setdefault(name, []).append(None)
        else:
            positional.append(token)
        i += 1
    return flags, positional


def _flag_value(values: list[str | None]) -> Any:
    return values[0] if len(values) == 1 else values


def _command_line(path: str, old: Sequence[str], new: Sequence[str]) -> Iterator[ValueChange]:
    old_flags, old_pos = parse_command_line(old)
    new_flags, new_pos = parse_command_line(new)
    found = False
    for i in range(max(len(old_pos), len(new_pos))):
        before: Any = old_pos[i] if i < len(old_pos) else ABSENT
        after: Any = new_pos[i] if i < len(new_pos) else ABSENT
        if before != after:
            found = True
            op: Op = "+" if before is ABSENT else "-" if after is ABSENT else "~"
            yield _scalar(op, path, before, after, f"#{i + 1}")
    for flag in sorted(set(old_flags) | set(new_flags)):
        if flag not in old_flags:
            found = True
            yield ValueChange("+", path, None, _flag_value(new_flags[flag]), flag)
        elif flag not in new_flags:
            found = True
            yield ValueChange("-", path, _flag_value(old_flags[flag]), None, flag)
        elif old_flags[flag] != new_flags[flag]:
            found = True
            yield _scalar("~", path, _flag_value(old_flags[flag]), _flag_value(new_flags[flag]), flag)
    if not found:  # the same flags and values, in another order or spelling
        yield ValueChange("~", path, list(old), list(new), "(order or --flag=value form)")


def _is_command_line(path: str, old: Sequence[Any], new: Sequence[Any]) -> bool:
    return (
        path.endswith((".args", ".command"))
        and "ontainers[" in path
        and all(isinstance(t, str) for t in (*old, *new))
    )


# --- the walk ------------------------------------------------------------------------------------


def _masked(path: str, old: Any, new: Any) -> Iterator[ValueChange]:
    """Which keys of a credential map changed, never their values."""
    if isinstance(old, dict) or isinstance(new, dict):
        before = old if isinstance(old, dict) else {}
        after = new if isinstance(new, dict) else {}
        for key in sorted(set(before) | set(after), key=str):
            sub = _join(path, key)
            if key not in before:
                yield ValueChange("+", sub, secret=True)
            elif key not in after:
                yield ValueChange("-", sub, secret=True)
            elif before[key] != after[key]:
                yield ValueChange("~", sub, secret=True)
    elif old != new:
        yield ValueChange("+" if old is ABSENT else "-" if new is ABSENT else "~", path, secret=True)


def _get(value: Any, key: Any) -> Any:
    return value.get(key, ABSENT) if isinstance(value, dict) else ABSENT


def _walk(old: Any, new: Any, path: str, masked: tuple[str, ...]) -> Iterator[ValueChange]:
    if path in masked:
        yield from _masked(path, old, new)
        return
    one_sided = old is ABSENT or new is ABSENT
    side = new if old is ABSENT else old
    holds_secrets = isinstance(side, dict) and any(m.startswith(path + ".") for m in masked)
    if (isinstance(old, dict) and isinstance(new, dict)) or (one_sided and holds_secrets):
        # Both maps, or a map that holds credentials further down appears or disappears whole.
        keys = [*(old if isinstance(old, dict) else ()), *(new if isinstance(new, dict) else ())]
        for key in sorted(set(keys), key=str):
            yield from _walk(_get(old, key), _get(new, key), _join(path, key), masked)
    elif one_sided:
        yield _scalar("+" if old is ABSENT else "-", path, old, new)
    elif isinstance(old, list) and isinstance(new, list):
        yield from _walk_list(old, new, path, masked)
    elif old != new or type(old) is not type(new):
        yield _scalar("~", path, old, new)


def _walk_list(old: list[Any], new: list[Any], path: str, masked: tuple[str, ...]) -> Iterator[ValueChange]:
    if old == new:
        return
    if _is_command_line(path, old, new):
        yield from _command_line(path, old, new)
        return
    old_named, new_named = _named(old), _named(new)
    if old_named is not None and new_named is not None:
        for name in [*old_named, *(n for n in new_named if n not in old_named)]:
            before, after = old_named.get(name, ABSENT), new_named.get(name, ABSENT)
            yield from _walk(before, after, f"{path}[{name}]", masked)
        return
    for i in range(max(len(old), len(new))):
        before = old[i] if i < len(old) else ABSENT
        after = new[i] if i < len(new) else ABSENT
        yield from _walk(before, after, f"{path}[{i}]", masked)


def value_changes(
    kind: str, old: Mapping[str, Any], new: Mapping[str, Any], skip: Sequence[str] = ()
) -> list[ValueChange]:
    """Every changed value between two versions of one object (keys in sorted order)."""
    masked = MASKED.get(kind, ())
    return [c for c in _walk(dict(old), dict(new), "", masked) if c.path not in skip]
