"""Fuzz inputs and the property every input must satisfy (issue 12 item 3).

Inputs come from two sources: documents built from the shapes of Workspace,
InferenceSet, ConfigMap and kaito-gen.yaml (valid ones, then with fields swapped,
dropped or duplicated), and byte-level mutations of real files (examples/ and
tests/golden/*/input): truncation, flipped bytes, control characters, invalid
UTF-8, deep nesting, alias bombs, recursive aliases, YAML tags, huge numbers.
Every mutation takes a ``random.Random`` so the Hypothesis strategies
(test_fuzz_quick.py) and the long multiprocess run (run_fuzz.py) share them.

The property (``run_one``): the input renders (``rendered``) or is refused with
diagnostics that all carry a file, line and column (``refused``). Anything else
is a finding: ``unpositioned`` (a refusal without a position), ``exception`` (an
uncaught exception: exit 3 in the CLI); the runner adds ``signal`` and ``hang``.
"""

from __future__ import annotations

import json
import random
import tempfile
import traceback
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KINDS = ("Workspace", "InferenceSet", "ConfigMap", "Config")


@cache
def seed_texts() -> tuple[bytes, ...]:
    files = sorted((REPO / "examples").rglob("*.yaml")) + sorted(
        (REPO / "tests" / "golden").glob("*/input/**/*.yaml")
    )
    return tuple(f.read_bytes() for f in files if "rendered" not in f.parts)


# --- structured documents ----------------------------------------------------------------------------

SKUS = (
    "Standard_NC24ads_A100_v4",
    "Standard_NC6s_v3",
    "p4d.24xlarge",
    "g5.xlarge",
    "Standard_NV36ads_A10_v5",
)
PRESETS = (
    "phi-3-mini-4k-instruct",
    "falcon-7b",
    "llama-3.1-8b-instruct",
    "qwen2.5-coder-7b-instruct",
    "phi-9",
)


def _name(rng: random.Random) -> str:
    return rng.choice(["ws", "phi", "a" * rng.randint(1, 70), "Bad_Name", "x-1", ""])


def workspace(rng: random.Random) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": rng.choice(["kaito.sh/v1beta1", "kaito.sh/v1alpha1", "kaito.sh/v9"]),
        "kind": "Workspace",
        "metadata": {"name": _name(rng), "namespace": rng.choice(["default", "ml", "Bad"])},
        "resource": {
            "instanceType": rng.choice(SKUS),
            "count": rng.choice([1, 2, 0, -1, "2"]),
            "labelSelector": {"matchLabels": {"apps": "ws"}},
        },
    }
    if rng.random() < 0.8:
        doc["inference"] = {"preset": {"name": rng.choice(PRESETS)}}
        if rng.random() < 0.3:
            doc["inference"]["adapters"] = [
                {"source": {"name": f"a{i}", "image": f"r.io/a:{i}"}, "strength": rng.choice(["0.5", "2", 1])}
                for i in range(rng.randint(0, 12))
            ]
        if rng.random() < 0.2:
            doc["inference"]["config"] = rng.choice(["cfg", "missing"])
    else:
        doc["tuning"] = {
            "method": rng.choice(["lora", "qlora", "full"]),
            "preset": {"name": rng.choice(PRESETS)},
            "input": {"urls": [rng.choice(["https://example.com/d.parquet", "http://169.254.169.254/x"])]},
            "output": {"image": "r.io/out:1", "imagePushSecret": "push"},
        }
    return doc


def inferenceset(rng: random.Random) -> dict[str, Any]:
    return {
        "apiVersion": "kaito.sh/v1alpha1",
        "kind": "InferenceSet",
        "metadata": {"name": _name(rng), "namespace": "default"},
        "spec": {
            "replicas": rng.choice([1, 3, -2, "x"]),
            "labelSelector": {"matchLabels": {"apps": "set"}},
            "template": {
                "resource": {"instanceType": rng.choice(SKUS)},
                "inference": {"preset": {"name": rng.choice(PRESETS)}},
            },
        },
    }


def configmap(rng: random.Random) -> dict[str, Any]:
    inner = rng.choice(
        [
            "vllm:\n  max-model-len: 4096\n",
            "vllm:\n  max-model-len: 99999999\n",
            "training_config:\n  LoraConfig:\n    r: 8\n",
            "a: [",
            "",
        ]
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default"},
        "data": {rng.choice(["inference_config.yaml", "training_config.yaml", "other"]): inner},
    }


def config(rng: random.Random) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "kaito-gen.io/v1alpha1", "kind": "Config"}
    for key, values in (
        ("cloud", ["azure", "aws", "gcp", 3]),
        ("defaultNamespace", ["ml", "Bad NS"]),
        ("kubernetesVersion", ["1.30", "2"]),
        (
            "gitops",
            [{"flavour": "flux"}, {"flavour": "argocd"}, {"flavour": "argocd", "argocd": {"repoURL": "x"}}],
        ),
        ("limits", [{"maxDepth": 8}, {"maxDepth": 0}, {"maxNodes": "many"}]),
        ("runtime", [{"registry": "r.io"}, {"tag": "bad tag"}]),
    ):
        if rng.random() < 0.4:
            doc[key] = rng.choice(values)
    return doc


BUILDERS: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "Workspace": workspace,
    "InferenceSet": inferenceset,
    "ConfigMap": configmap,
    "Config": config,
}


def _walk_mutate(node: Any, rng: random.Random) -> Any:
    """Swap types, drop and duplicate keys, somewhere in the tree."""
    if isinstance(node, dict) and node:
        key = rng.choice(list(node))
        roll = rng.random()
        if roll < 0.25:
            node.pop(key)
        elif roll < 0.5:
            node[key] = rng.choice(
                [None, 0, -1, 2**70, 1.5, "", "x" * 300, [], {}, [1, "a"], {"k": "v"}, True]
            )
        else:
            node[key] = _walk_mutate(node[key], rng)
    elif isinstance(node, list) and node:
        i = rng.randrange(len(node))
        node[i] = _walk_mutate(node[i], rng)
    return node


def structured(rng: random.Random, kind: str, valid: bool) -> bytes:
    doc = BUILDERS[kind](rng)
    if not valid:
        for _ in range(rng.randint(1, 4)):
            doc = _walk_mutate(doc, rng)
    text = yaml.safe_dump(doc, sort_keys=False)
    if kind == "ConfigMap" and rng.random() < 0.7:
        text += "---\n" + yaml.safe_dump(
            workspace(rng) | {"inference": {"preset": {"name": "phi-3-mini-4k-instruct"}, "config": "cfg"}}
        )
    return text.encode()


# --- byte-level mutations ------------------------------------------------------------------------------


def _pos(data: bytes, rng: random.Random) -> int:
    return rng.randint(0, len(data)) if data else 0


def _insert(data: bytes, rng: random.Random, what: bytes) -> bytes:
    at = _pos(data, rng)
    return data[:at] + what + data[at:]


def _after_colon(data: bytes, rng: random.Random, what: bytes) -> bytes:
    spots = [i for i in range(len(data) - 1) if data[i : i + 2] == b": "]
    if not spots:
        return data + b"\nx: " + what + b"\n"
    at = rng.choice(spots) + 2
    end = data.find(b"\n", at)
    end = len(data) if end < 0 else end
    return data[:at] + what + data[end:]


VALUES = [
    b"!!int 0xZZ",
    b"!!int 0x" + b"f" * 40,
    b"!!float abc",
    b"!!float 1e999",
    b"1e400",
    b"9" * 30,
    b"9" * 5000,
    b"!!binary aGk=",
    b"!foo bar",
    b"!!set {a}",
    b"!!timestamp 2001-01-01",
    b"*undefined",
    b"&a [*a]",
    b"[[[[[[[[",
    b"{a: 1, a: 2}",
    b"~",
    b"-1",
    b"'\\x00'",
    b'"\\u0000"',
    b"[]",
    b"{}",
    b"<<: {a: 1}",
    b"? [a]\n  : b",
]


def m_truncate(d: bytes, r: random.Random) -> bytes:
    return d[: _pos(d, r)]


def m_flip(d: bytes, r: random.Random) -> bytes:
    if not d:
        return d
    at = r.randrange(len(d))
    return d[:at] + bytes([r.randrange(256)]) + d[at + 1 :]


def m_control(d: bytes, r: random.Random) -> bytes:
    return _insert(d, r, bytes([r.choice([0, 1, 7, 8, 11, 12, 27, 127])]))


def m_bad_utf8(d: bytes, r: random.Random) -> bytes:
    return _insert(d, r, r.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))


def m_value(d: bytes, r: random.Random) -> bytes:
    return _after_colon(d, r, r.choice(VALUES))


def m_deep(d: bytes, r: random.Random) -> bytes:
    n = r.choice([50, 65, 500, 20_000])
    style = r.random()
    if style < 0.4:
        return _after_colon(d, r, b"[" * n + b"]" * n)
    if style < 0.7:
        return _after_colon(d, r, b"&a " + b"[" * n + b"*a" + b"]" * n)
    return d + b"\n" + b"".join(b"  " * i + b"k:\n" for i in range(min(n, 3000)))


def m_bomb(d: bytes, r: random.Random) -> bytes:
    lines = [b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(r.randint(3, 9)):
        prev, cur = chr(97 + i).encode(), chr(98 + i).encode()
        lines.append(cur + b": &" + cur + b" [" + b",".join([b"*" + prev] * 9) + b"]")
    return (d.rstrip(b"\n") + b"\n" if r.random() < 0.5 else b"") + b"\n".join(lines) + b"\n"


def m_recursive_alias(d: bytes, r: random.Random) -> bytes:
    return _after_colon(d, r, r.choice([b"&r\n  self: *r", b"&r [*r]", b"&r {x: *r}"]))


def m_lines(d: bytes, r: random.Random) -> bytes:
    lines = d.split(b"\n")
    if not lines:
        return d
    i = r.randrange(len(lines))
    roll = r.random()
    if roll < 0.3:
        del lines[i]
    elif roll < 0.6:
        lines.insert(i, lines[i])  # duplicated key
    elif roll < 0.8:
        lines[i] = b" " * r.randint(1, 3) + lines[i]
    else:
        lines[i] = lines[i].replace(b"  ", b"\t", 1)
    return b"\n".join(lines)


def m_empty(d: bytes, r: random.Random) -> bytes:
    return r.choice(
        [b"", b"# nothing here\n", b"---\n", b"---\n...\n", b"\n\n", b"\xef\xbb\xbf", b"null\n", b"42\n"]
    )


def m_documents(d: bytes, r: random.Random) -> bytes:
    return b"---\n".join([d] * r.randint(2, 5)) if len(d) < 20_000 else d


def m_crlf(d: bytes, r: random.Random) -> bytes:
    return d.replace(b"\n", b"\r\n")


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": m_truncate,
    "flip": m_flip,
    "control": m_control,
    "bad-utf8": m_bad_utf8,
    "value": m_value,
    "deep": m_deep,
    "bomb": m_bomb,
    "recursive-alias": m_recursive_alias,
    "lines": m_lines,
    "empty": m_empty,
    "documents": m_documents,
    "crlf": m_crlf,
}


def mutate(data: bytes, rng: random.Random, rounds: int) -> bytes:
    for _ in range(rounds):
        if len(data) > 1 << 20:
            break
        data = MUTATIONS[rng.choice(sorted(MUTATIONS))](data, rng)
    return data


def make_input(seed: int) -> tuple[str, bytes]:
    """Input number ``seed`` of the long run: (role, bytes); role is "config" or "source"."""
    rng = random.Random(seed)
    roll = rng.random()
    kind = rng.choice(KINDS)
    role = "config" if kind == "Config" and roll < 0.45 else "source"
    if roll < 0.25:
        return role, structured(rng, kind, valid=rng.random() < 0.3)
    if roll < 0.45:
        return role, mutate(structured(rng, kind, valid=True), rng, rng.randint(1, 3))
    return "source", mutate(rng.choice(seed_texts()), rng, rng.randint(1, 3))


# --- the property --------------------------------------------------------------------------------------


@cache
def _catalog() -> Any:
    from kaito_gen.compiler.load import load_presets

    return load_presets()


def run_one(role: str, data: bytes) -> tuple[str, str]:
    """(outcome, detail) for one input, run through the same calls the CLI makes."""
    from kaito_gen.compiler.load import load
    from kaito_gen.compiler.pipeline import compile_inputs
    from kaito_gen.config import load_config
    from kaito_gen.core.errors import InputError, KaitoGenError
    from kaito_gen.models.target import Target

    with tempfile.TemporaryDirectory(prefix="kaito-fuzz-") as tmp:
        base = Path(tmp)
        try:
            if role == "config":
                path = base / "kaito-gen.yaml"
                path.write_bytes(data)
                loaded = load_config(path, "kaito-gen.yaml")
                loaded.target()
                return "rendered", ""
            path = base / "input.yaml"
            path.write_bytes(data)
            inputs = load([path], base=base)
            compiled = compile_inputs(inputs, _catalog(), Target())
            diags = list(inputs.problems) + list(compiled.diagnostics)
            if compiled.ok and not any(d.is_error for d in inputs.problems):
                if not compiled.files:
                    return "exception", "ok without files"
                return "rendered", ""
        except InputError as exc:
            diags = list(exc.diagnostics)
        except KaitoGenError as exc:
            return "unpositioned", f"{type(exc).__name__}: {exc}"
        except Exception:  # the property: nothing else escapes
            return "exception", traceback.format_exc(limit=6)
    bad = [d for d in diags if d.is_error and (not d.pos.file or d.pos.line <= 0 or d.pos.col <= 0)]
    if bad:
        return "unpositioned", json.dumps([d.to_json() for d in bad[:3]])
    if not any(d.is_error for d in diags):
        return "unpositioned", "refused without an error diagnostic"
    return "refused", ""
