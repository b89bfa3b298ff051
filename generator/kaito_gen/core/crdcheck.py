"""Offline validation of custom resources against CustomResourceDefinitions.

Input: CRD YAML as ``kubectl get crd NAME -o yaml`` prints it (one CRD, many
documents in one file, or a ``kind: List``), from files or directories. Output:
for any custom resource, the list of :class:`CrdViolation` an API server with
strict field validation would report from the CRD's ``openAPIV3Schema``.

How the OpenAPI v3 "structural schema" of a CRD becomes a JSON Schema that
``jsonschema.Draft4Validator`` (whose keyword semantics match OpenAPI 3.0) checks
strictly, as the API server does:

* ``x-kubernetes-int-or-string`` → ``anyOf: [integer, string]`` (such nodes carry no
  ``type``, so without this anything would pass);
* ``nullable: true`` → ``null`` added to ``type`` (and to ``enum``);
* unknown fields are rejected: ``additionalProperties: false`` on every object node
  that declares neither ``additionalProperties`` nor
  ``x-kubernetes-preserve-unknown-fields`` (the API server prunes such fields, and
  rejects them under ``kubectl``'s default ``--validate=strict``);
* ``default`` values are applied before validation, as the API server does.

Not covered here (tests add them on top): CEL ``x-kubernetes-validations`` rules
and list-type uniqueness. The root ``metadata`` is checked against a compact
ObjectMeta schema because CRDs declare it only as ``{type: object}``.

Each schema node is translated exactly once (translating ``properties`` twice per
level makes the work exponential in depth), and validators are compiled lazily
and cached per (apiVersion, kind): once loaded, the 1.4 MB Argo CD ApplicationSet
CRD costs nothing more until an ApplicationSet is validated.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jsonschema
from jsonschema.exceptions import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.resolver import VersionedResolver

from kaito_gen.core.errors import UsageError, format_path

__all__ = ["CrdCatalog", "CrdEntry", "CrdLoadError", "CrdViolation", "violations_from_error"]

# Bounds on untrusted input: the largest upstream CRD (Argo CD ApplicationSet) is 1.4 MB.
MAX_CRD_FILE_BYTES: Final = 32 * 1024 * 1024
MAX_CRD_FILES: Final = 10_000
MAX_SCHEMA_DEPTH: Final = 128
MAX_VIOLATIONS: Final = 200
MAX_MESSAGE_CHARS: Final = 300

_CRD_API_VERSION: Final = "apiextensions.k8s.io/v1"
_YAML_SUFFIXES: Final = (".yaml", ".yml")
_INT_OR_STRING: Final[list[dict[str, Any]]] = [{"type": "integer"}, {"type": "string"}]
_JUNCTORS: Final = ("allOf", "anyOf", "oneOf")
# Keys whose values are data, not schemas, and are kept as they are.
_DATA_KEYWORDS: Final = frozenset({"enum", "required"})
# Keys the validator does not need; dropping them keeps the compiled schema small.
_DROPPED_KEYWORDS: Final = frozenset({"description", "default", "example", "externalDocs", "title"})
# CRDs may not use these (the API server rejects them); `$ref` could point anywhere.
_FORBIDDEN_KEYWORDS: Final = frozenset({"$ref", "$schema", "id", "$id", "definitions", "patternProperties"})


class CrdLoadError(UsageError):
    """A CRD file (or a directory of them) cannot be used: which file, and why."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = Path(path)
        self.message = message


@dataclass(frozen=True)
class CrdViolation:
    """One problem in a custom resource: a field path such as
    ``spec.template.spec.requirements[0].operator`` ("" for the document) and a message."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(root)'}: {self.message}"


# A compact, strict ObjectMeta (Kubernetes 1.32): CRDs declare the root `metadata` only
# as `{type: object}`, yet the API server checks it like any object's metadata.
_OBJECT_META_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
        "managedFields": {"type": "array", "items": {"type": "object"}},
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "selfLink": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": ["string", "null"]},
        "deletionTimestamp": {"type": ["string", "null"]},
        "deletionGracePeriodSeconds": {"type": "integer"},
    },
}


@functools.cache
def _meta_validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(_OBJECT_META_SCHEMA)


class CrdEntry:
    """One served version of one CRD; compiles its validator on first use."""

    __slots__ = ("_validator", "api_version", "crd_name", "kind", "schema", "scope", "source")

    def __init__(
        self,
        *,
        api_version: str,
        kind: str,
        crd_name: str,
        scope: str,
        schema: Mapping[str, Any],
        source: Path,
    ) -> None:
        self.api_version = api_version
        self.kind = kind
        self.crd_name = crd_name
        self.scope = scope
        #: The CRD's ``openAPIV3Schema`` as loaded (with ``x-kubernetes-validations``); treat as read-only.
        self.schema = schema
        self.source = source
        self._validator: jsonschema.Draft4Validator | None = None

    def validator(self) -> jsonschema.Draft4Validator:
        """The strict Draft 4 validator, translated and compiled once."""
        if self._validator is None:
            where = f"CRD {self.crd_name} version {self.api_version.rpartition('/')[2]}"
            try:
                # The translator checks every keyword it copies; jsonschema's own
                # check_schema would cost 0.7 s on the ApplicationSet schema alone.
                translated = _translate_root(self.schema)
            except _SchemaShapeError as exc:
                raise CrdLoadError(self.source, f"{where}: invalid openAPIV3Schema: {exc}") from None
            self._validator = jsonschema.Draft4Validator(translated)
        return self._validator

    def with_defaults(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """A deep copy of ``doc`` with the schema's ``default`` values filled in (as the API server does)."""
        out = copy.deepcopy(dict(doc))
        _apply_defaults(self.schema, out, 0)
        return out


class CrdCatalog:
    """Served CRD versions by (apiVersion, kind). Later additions override earlier ones."""

    def __init__(self, entries: Mapping[tuple[str, str], CrdEntry] | None = None) -> None:
        self._entries: dict[tuple[str, str], CrdEntry] = dict(entries or {})

    @classmethod
    def from_paths(cls, paths: Sequence[Path]) -> CrdCatalog:
        """Load every CustomResourceDefinition in ``paths`` (files, or directories searched
        recursively for ``*.yaml``/``*.yml`` in sorted order). Documents of other kinds are
        ignored; finding no CRD at all is an error. Raises :class:`CrdLoadError`."""
        catalog = cls()
        files = [file for path in paths for file in _yaml_files(Path(path))]
        if len(files) > MAX_CRD_FILES:
            raise CrdLoadError(paths[0], f"more than {MAX_CRD_FILES} YAML files; point at the CRD directory")
        loader = _crd_yaml()
        for file in files:
            for entry in _entries_in_file(file, loader):
                catalog._entries[(entry.api_version, entry.kind)] = entry
        if not catalog._entries:
            where = ", ".join(str(p) for p in paths) or "(no paths given)"
            raise CrdLoadError(
                where,
                "no CustomResourceDefinition found (export them with `kubectl get crd NAME -o yaml`)",
            )
        return catalog

    @classmethod
    def combine(cls, catalogs: Sequence[CrdCatalog]) -> CrdCatalog:
        """One catalog from several; a later catalog wins for the same (apiVersion, kind).
        Entries (and their compiled validators) are shared, not copied."""
        merged = cls()
        for catalog in catalogs:
            merged._entries.update(catalog._entries)
        return merged

    def __len__(self) -> int:
        return len(self._entries)

    def kinds(self) -> list[tuple[str, str]]:
        """Every (apiVersion, kind) served, sorted."""
        return sorted(self._entries)

    def covers(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self._entries

    def entry(self, api_version: str, kind: str) -> CrdEntry | None:
        return self._entries.get((api_version, kind))

    def validate(self, doc: Mapping[str, Any], *, check_metadata: bool = True) -> list[CrdViolation]:
        """Every violation of ``doc`` against its CRD, sorted by path; ``[]`` when valid.

        A document whose (apiVersion, kind) no CRD serves is a violation, never a pass.
        ``check_metadata=False`` skips the ObjectMeta schema (callers with a fuller one)."""
        if not isinstance(doc, Mapping):
            return [CrdViolation("", f"expected a mapping, got {type(doc).__name__}")]
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return [CrdViolation("", "apiVersion and kind must both be set to strings")]
        entry = self._entries.get((api_version, kind))
        if entry is None:
            return [CrdViolation("", self._no_crd_message(api_version, kind))]
        defaulted = entry.with_defaults(doc)
        found: list[CrdViolation] = []
        for error in entry.validator().iter_errors(defaulted):
            found.extend(violations_from_error(error, ()))
        metadata = defaulted.get("metadata")
        if not isinstance(metadata, Mapping):
            found.append(CrdViolation("metadata", "required: an object with a name"))
        else:
            if not metadata.get("name") and not metadata.get("generateName"):
                found.append(CrdViolation("metadata.name", "required"))
            if check_metadata:
                for error in _meta_validator().iter_errors(metadata):
                    found.extend(violations_from_error(error, ("metadata",)))
        unique = sorted(set(found), key=lambda v: (v.path, v.message))
        if len(unique) > MAX_VIOLATIONS:
            more = len(unique) - MAX_VIOLATIONS
            unique = [*unique[:MAX_VIOLATIONS], CrdViolation("", f"… and {more} more")]
        return unique

    def with_defaults(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """``doc`` with its CRD's defaults applied (a plain copy when no CRD covers it)."""
        entry = self._entries.get((str(doc.get("apiVersion")), str(doc.get("kind"))))
        return entry.with_defaults(doc) if entry else copy.deepcopy(dict(doc))

    def _no_crd_message(self, api_version: str, kind: str) -> str:
        served = sorted(av for av, k in self._entries if k == kind)
        hint = f"; {kind} is served as {', '.join(served)}" if served else ""
        return f"no CustomResourceDefinition serves apiVersion {api_version!r} kind {kind!r}{hint}"


# --- loading -------------------------------------------------------------------------------------


class _Yaml12Resolver(VersionedResolver):
    """ruamel asks for the document's YAML version once per scalar, and with the C parser
    the answer comes through a raised-and-caught AttributeError (30% of the load time of the
    Argo CD CRDs). The C parser does not report ``%YAML`` directives anyway, so the answer
    there is always the default, 1.2; the pure-Python fallback now ignores them too."""

    @property
    def processing_version(self) -> tuple[int, int]:
        return (1, 2)


def _crd_yaml() -> YAML:
    # typ="safe" builds plain dicts/lists; pure=False takes libyaml's C parser when
    # ruamel.yaml.clib is installed (5x faster than the pure-Python parser on these CRDs).
    loader = YAML(typ="safe", pure=False)
    loader.Resolver = _Yaml12Resolver
    return loader


def _yaml_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CrdLoadError(path, "no such file or directory")
    found: list[Path] = []
    # os.walk does not follow symlinked directories, so a link loop cannot trap us.
    for root, dirs, names in os.walk(path):
        dirs.sort()
        found.extend(Path(root, n) for n in sorted(names) if n.endswith(_YAML_SUFFIXES))
        if len(found) > MAX_CRD_FILES:
            break
    return sorted(found, key=lambda p: p.relative_to(path).as_posix())


def _entries_in_file(file: Path, loader: YAML) -> Iterator[CrdEntry]:
    try:
        if file.stat().st_size > MAX_CRD_FILE_BYTES:
            raise CrdLoadError(file, f"larger than {MAX_CRD_FILE_BYTES // (1024 * 1024)} MiB")
        docs = list(loader.load_all(file.read_bytes()))
    except OSError as exc:
        raise CrdLoadError(file, f"cannot read: {exc.strerror or exc}") from None
    except YAMLError as exc:
        raise CrdLoadError(file, f"not valid YAML: {_short(str(exc).strip())}") from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise CrdLoadError(file, f"cannot load: {_short(str(exc))}") from None
    for index, doc in enumerate(docs):
        for crd in _crd_documents(doc):
            yield from _parse_crd(crd, file, index)


def _crd_documents(doc: Any) -> Iterator[Mapping[str, Any]]:
    """CRDs in one YAML document: the document itself, or the items of a (CRD) list."""
    if not isinstance(doc, Mapping):
        return
    if doc.get("kind") == "CustomResourceDefinition":
        yield doc
    elif doc.get("kind") in ("List", "CustomResourceDefinitionList") and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            if isinstance(item, Mapping) and item.get("kind") == "CustomResourceDefinition":
                yield item


def _parse_crd(crd: Mapping[str, Any], file: Path, index: int) -> Iterator[CrdEntry]:
    meta = crd.get("metadata")
    name = str(meta.get("name", "")) if isinstance(meta, Mapping) else ""
    label = f"document {index + 1}, CRD {name or '(unnamed)'}"
    if crd.get("apiVersion") != _CRD_API_VERSION:
        raise CrdLoadError(
            file,
            f"{label}: apiVersion {crd.get('apiVersion')!r} is not supported, only {_CRD_API_VERSION} "
            "(apiextensions.k8s.io/v1beta1 was removed in Kubernetes 1.22; re-export with kubectl)",
        )
    spec = crd.get("spec")
    if not isinstance(spec, Mapping):
        raise CrdLoadError(file, f"{label}: spec is missing")
    group, names, versions = spec.get("group"), spec.get("names"), spec.get("versions")
    kind = names.get("kind") if isinstance(names, Mapping) else None
    if not isinstance(group, str) or not group or not isinstance(kind, str) or not kind:
        raise CrdLoadError(file, f"{label}: spec.group and spec.names.kind must be non-empty strings")
    if not isinstance(versions, list) or not versions:
        raise CrdLoadError(file, f"{label}: spec.versions must be a non-empty list")
    scope = str(spec.get("scope", "Namespaced"))
    for i, version in enumerate(versions):
        if not isinstance(version, Mapping) or not isinstance(version.get("name"), str):
            raise CrdLoadError(file, f"{label}: spec.versions[{i}].name is missing")
        if version.get("served") is not True:
            continue
        schema = version.get("schema")
        root = schema.get("openAPIV3Schema") if isinstance(schema, Mapping) else None
        if not isinstance(root, Mapping):
            raise CrdLoadError(file, f"{label}: spec.versions[{i}].schema.openAPIV3Schema is missing")
        yield CrdEntry(
            api_version=f"{group}/{version['name']}",
            kind=kind,
            crd_name=name or kind,
            scope=scope,
            schema=root,
            source=file,
        )


# --- schema translation ----------------------------------------------------------------------------


class _SchemaShapeError(ValueError):
    """The openAPIV3Schema is not a structural schema we can translate."""


def _translate_root(schema: Mapping[str, Any]) -> dict[str, Any]:
    return _Translator().node(schema, (), root=True)


class _Translator:
    """Translates each schema node once. Memoised by node identity so that YAML aliases
    (shared nodes) cost nothing extra; a node that contains itself is rejected."""

    def __init__(self) -> None:
        self._done: dict[tuple[int, bool], dict[str, Any]] = {}
        self._active: set[int] = set()

    def node(
        self, node: Any, path: tuple[str, ...], *, root: bool = False, in_junctor: bool = False
    ) -> dict[str, Any]:
        if not isinstance(node, Mapping):
            raise _SchemaShapeError(f"schema at {_schema_path(path)} is not a mapping")
        if len(path) > MAX_SCHEMA_DEPTH:
            raise _SchemaShapeError(f"schema nested deeper than {MAX_SCHEMA_DEPTH} levels")
        key = (id(node), in_junctor)
        if key in self._done:
            return self._done[key]
        if id(node) in self._active:
            raise _SchemaShapeError(f"schema at {_schema_path(path)} contains itself")
        self._active.add(id(node))
        try:
            out = self._translate(node, path, root=root, in_junctor=in_junctor)
        finally:
            self._active.discard(id(node))
        self._done[key] = out
        return out

    def _translate(
        self, node: Mapping[str, Any], path: tuple[str, ...], *, root: bool, in_junctor: bool
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k in _FORBIDDEN_KEYWORDS:
                raise _SchemaShapeError(f"{k!r} is not allowed in a CRD schema (at {_schema_path(path)})")
            if k in _DROPPED_KEYWORDS or (isinstance(k, str) and k.startswith("x-kubernetes-")):
                continue
            if k == "enum" and not (isinstance(v, list) and v):
                raise _SchemaShapeError(f"enum at {_schema_path(path)} is not a non-empty list")
            if k == "required" and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                raise _SchemaShapeError(f"required at {_schema_path(path)} is not a list of strings")
            if k in _DATA_KEYWORDS:
                out[k] = v
            elif k == "properties":
                if not isinstance(v, Mapping):
                    raise _SchemaShapeError(f"properties at {_schema_path(path)} is not a mapping")
                out[k] = {
                    name: self.node(sub, (*path, str(name)), in_junctor=in_junctor) for name, sub in v.items()
                }
            elif k == "additionalProperties" and isinstance(v, bool):
                out[k] = v
            elif k in ("items", "additionalProperties", "not"):
                out[k] = self.node(v, (*path, k), in_junctor=in_junctor or k == "not")
            elif k in _JUNCTORS:
                if not isinstance(v, list):
                    raise _SchemaShapeError(f"{k} at {_schema_path(path)} is not a list")
                out[k] = [self.node(sub, (*path, k), in_junctor=True) for sub in v]
            else:
                _check_keyword(k, v, path)
                out[k] = v  # type, format, pattern, minimum, maxItems, …: plain values
        if node.get("nullable") is True:
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        out.pop("nullable", None)
        if node.get("x-kubernetes-int-or-string") is True:
            out.setdefault("anyOf", _INT_OR_STRING)
        embedded = root or node.get("x-kubernetes-embedded-resource") is True
        if embedded:
            # apiVersion, kind and metadata are implicitly allowed on (embedded) resources.
            props = out.setdefault("properties", {})
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            # metadata is checked against ObjectMeta separately; keep only what the CRD says
            # about it (name/generateName constraints) and leave it open here.
            meta = props.get("metadata")
            if isinstance(meta, dict):
                props["metadata"] = {k: v for k, v in meta.items() if k != "additionalProperties"}
            else:
                props["metadata"] = {"type": "object"}
        # Logical junctors only restate properties of their parent: closing them would
        # reject fields the parent declares.
        is_object = "properties" in out or node.get("type") == "object"
        if (
            not in_junctor
            and is_object
            and "additionalProperties" not in node
            and node.get("x-kubernetes-preserve-unknown-fields") is not True
        ):
            out["additionalProperties"] = False
        return out


_TYPES: Final = frozenset({"object", "array", "string", "integer", "number", "boolean"})
_COUNTS: Final = frozenset(
    {"maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties"}
)
_NUMBERS: Final = frozenset({"maximum", "minimum", "multipleOf"})
_FLAGS: Final = frozenset({"exclusiveMaximum", "exclusiveMinimum", "uniqueItems", "nullable"})


def _check_keyword(key: str, value: Any, path: tuple[str, ...]) -> None:
    """The Draft 4 metaschema's rules for the keywords a structural schema may use."""
    ok = True
    if key == "type":
        ok = isinstance(value, str) and value in _TYPES
    elif key in _COUNTS:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    elif key in _NUMBERS:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif key in _FLAGS:
        ok = isinstance(value, bool)
    elif key in ("format", "pattern"):
        ok = isinstance(value, str)
        if ok and key == "pattern":
            try:
                re.compile(value)
            except re.error as exc:
                raise _SchemaShapeError(f"pattern {value!r} at {_schema_path(path)}: {exc}") from None
    if not ok:
        raise _SchemaShapeError(f"{key}: {_short(repr(value))} is not valid (at {_schema_path(path)})")


def _schema_path(path: tuple[str, ...]) -> str:
    return ".".join(path) or "(root)"


def _apply_defaults(schema: Any, value: Any, depth: int) -> None:
    """Fill absent fields from ``default`` in place, recursively (structural defaulting)."""
    if not isinstance(schema, Mapping) or depth > MAX_SCHEMA_DEPTH:
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        if isinstance(props, Mapping):
            for name, sub in props.items():
                if name not in value and isinstance(sub, Mapping) and "default" in sub:
                    value[name] = copy.deepcopy(sub["default"])
                if name in value:
                    _apply_defaults(sub, value[name], depth + 1)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for name, item in value.items():
                if not (isinstance(props, Mapping) and name in props):
                    _apply_defaults(extra, item, depth + 1)
    elif isinstance(value, list):
        items = schema.get("items")
        for item in value:
            _apply_defaults(items, item, depth + 1)


# --- errors ------------------------------------------------------------------------------------------


def violations_from_error(
    error: ValidationError, prefix: tuple[str | int, ...] = ()
) -> Iterator[CrdViolation]:
    """Readable violations from one jsonschema error (any draft), its path under ``prefix``.

    ``additionalProperties: false`` becomes one ``unknown field`` per unexpected key, at
    that key's path, like ``kubectl --validate=strict``; messages are capped in length."""
    path = (*prefix, *error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        declared = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        if isinstance(error.instance, Mapping):
            for key in error.instance:
                if key not in declared:
                    yield CrdViolation(format_path((*path, str(key))), f'unknown field "{key}"')
            return
    if error.validator == "anyOf" and error.validator_value == _INT_OR_STRING:
        yield CrdViolation(
            format_path(path), f"{_short(repr(error.instance))} must be an integer or a string"
        )
        return
    yield CrdViolation(format_path(path), _short(error.message))


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
