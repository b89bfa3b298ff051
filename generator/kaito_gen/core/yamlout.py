"""A canonical YAML writer for Kubernetes manifests.

Manifests are trees of dicts, lists, strings, ints and bools, so a dedicated
writer is both simpler and several times faster than a general YAML dumper.
The output is stable and readable the way ``kubectl get -o yaml`` is:

* keys in insertion order (emitters build them in kubectl's order);
* block style, list items at their parent key's indentation, ``{}``/``[]`` when empty;
* a string is plain only when it cannot be read as anything else in YAML 1.1 *or*
  1.2; strings that start with a digit (quantities, versions, ports) are always
  quoted, so ``"16Gi"`` and ``"1.0"`` can never turn into numbers;
* multi-line strings as literal blocks (``|``, ``|-``, ``|+``);
* one trailing newline.

tests/generator/test_yamlout.py checks that every output reads back, with two
independent YAML libraries, to exactly the input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Plain scalars: start with a letter, '_', '/' or '-' followed by a letter or '-' (CLI flags
# such as --model), then safe characters; single spaces or colons only between words.
_PLAIN = re.compile(r"^(?:[A-Za-z_/]|-[A-Za-z]|--[A-Za-z])[A-Za-z0-9_./=@+\-]*(?:[ :][A-Za-z0-9_./=@+\-]+)*$")
# Words YAML 1.1 or 1.2 resolve to booleans or null.
_SPECIAL = frozenset(
    w
    for word in ("y", "n", "yes", "no", "on", "off", "true", "false", "null")
    for w in (word, word.upper(), word.capitalize())
)
_plain_cache: dict[str, bool] = {}


def _is_plain(text: str) -> bool:
    hit = _plain_cache.get(text)
    if hit is not None:
        return hit
    ok = (
        _PLAIN.fullmatch(text) is not None
        and text not in _SPECIAL
        and ": " not in text
        and not text.endswith(":")
        and "::" not in text
    )
    if len(_plain_cache) < 65536:
        _plain_cache[text] = ok
    return ok


def _printable(ch: str) -> bool:
    code = ord(ch)
    if code < 0x20:
        return ch in "\t\n"
    if 0x7F <= code <= 0x9F:
        return False
    return not (0xD800 <= code <= 0xDFFF or code in (0xFEFF, 0xFFFE, 0xFFFF, 0x2028, 0x2029))


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


_ASCII_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def quote(text: str) -> str:
    """A YAML double-quoted scalar."""
    if _ASCII_PRINTABLE.fullmatch(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = ['"']
    for ch in text:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif _printable(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def scalar(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return value if _is_plain(value) else quote(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return value if _is_plain(value) else quote(value)
    raise TypeError(f"cannot write {type(value).__name__} to YAML")


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"  # YAML 1.1 needs the dot
    return text


def _block(text: str) -> bool:
    """Whether a multi-line string can be written as a literal block."""
    if "\n" not in text or text.startswith((" ", "\n")) or "\r" in text:
        return False
    return all(_printable(ch) for ch in text) and not any(
        line.endswith((" ", "\t")) for line in text.split("\n")
    )


def _literal(text: str, indent: str) -> list[str]:
    stripped = text.rstrip("\n")
    trailing = len(text) - len(stripped)
    head = "|-" if trailing == 0 else "|" if trailing == 1 else "|+"
    lines = [head]
    for line in stripped.split("\n"):
        lines.append(indent + line if line else "")
    if trailing > 1:
        lines.extend([""] * (trailing - 1))
    return lines


def _is_map(value: Any) -> bool:
    # Exact-type checks first: isinstance against the ABCs is the writer's hot spot.
    kind = type(value)
    return kind is dict or (kind is not str and kind is not list and isinstance(value, Mapping))


def _is_seq(value: Any) -> bool:
    kind = type(value)
    if kind is list or kind is tuple:
        return True
    return kind is not str and kind is not dict and isinstance(value, Sequence) and not isinstance(value, str)


def _value(value: Any, indent: str, out: list[str], prefix: str) -> None:
    """Write ``prefix`` (``"key:"`` or ``"-"``) followed by ``value`` at ``indent``."""
    if type(value) is str and "\n" not in value:
        out.append(f"{prefix} {value if _is_plain(value) else quote(value)}")
    elif _is_map(value):
        if not value:
            out.append(f"{prefix} {{}}")
            return
        out.append(prefix)
        _mapping(value, indent + "  " if prefix.endswith(":") else indent, out)
    elif _is_seq(value):
        if not value:
            out.append(f"{prefix} []")
            return
        out.append(prefix)
        _sequence(value, indent if prefix.endswith(":") else indent + "  ", out)
    elif isinstance(value, str) and "\n" in value and _block(value):
        lines = _literal(value, indent + "  ")
        out.append(f"{prefix} {lines[0]}")
        out.extend(lines[1:])
    else:
        out.append(f"{prefix} {scalar(value)}")


def _mapping(value: Mapping[str, Any], indent: str, out: list[str]) -> None:
    for key, item in value.items():
        _value(item, indent, out, f"{indent}{scalar(str(key))}:")


def _sequence(value: Sequence[Any], indent: str, out: list[str]) -> None:
    for item in value:
        if item and _is_map(item):
            # First key on the dash line, the rest aligned under it.
            sub: list[str] = []
            _mapping(item, indent + "  ", sub)
            sub[0] = f"{indent}- {sub[0][len(indent) + 2 :]}"
            out.extend(sub)
        elif item and _is_seq(item):
            sub = []
            _sequence(item, indent + "  ", sub)
            sub[0] = f"{indent}- {sub[0][len(indent) + 2 :]}"
            out.extend(sub)
        else:
            _value(item, indent + "  ", out, f"{indent}-")


def dump(doc: Mapping[str, Any]) -> str:
    """One document, canonical, ending in exactly one newline."""
    out: list[str] = []
    _mapping(doc, "", out)
    return "\n".join(out) + "\n"
