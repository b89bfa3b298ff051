"""The test-side check of every document kaito-gen emits (issue 2 §8, issue 3 §3-4).

One :class:`ManifestValidator` per provider profile combines, for each document:

* a built-in kind → kubernetes-validate's **strict** JSON Schemas for Kubernetes 1.32,
  through one cached ``Draft202012Validator`` per (apiVersion, kind); ``iter_errors``
  reports every error (the kubernetes-validate API stops at the first);
* a custom resource → :class:`kaito_gen.core.crdcheck.CrdCatalog` (the CRD's structural schema,
  strict, defaults applied), kubernetes-validate's strict ``ObjectMeta`` for ``metadata``
  and the CRD's CEL ``x-kubernetes-validations`` evaluated with cel-python;
* anything else → an error: "no schema found" is never a pass (kubernetes-validate only
  warns for CRDs and for removed apiVersions such as ``policy/v1beta1``).

The CRDs are read from ``$KAITO_GEN_CRD_DIR`` or ``<repo>/../shared/reference/crds``;
they are never copied into the project. See ``/work/shared/reference/VALIDATION.md``.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import celpy
import jsonschema
import pytest
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from kaito_gen.core.crdcheck import CrdCatalog, violations_from_error
from referencing import Registry, Resource

Provider = Literal["core", "azure", "aws"]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CRD_ROOT = REPO_ROOT.parent / "shared" / "reference" / "crds"
KUBERNETES_VERSION = "1.32.0"

# Folders of shared/reference/crds (see its SOURCES.md). The NodePool/NodeClaim copy must be
# the provider's: providers add label-domain CEL rules and make consolidateAfter required.
PROVIDER_CRD_DIRS: dict[str, str] = {
    "core": "kubernetes-sigs-karpenter",
    "azure": "Azure-karpenter-provider-azure",
    "aws": "aws-karpenter-provider-aws",
}
GITOPS_CRD_DIRS = ("argoproj-argo-cd", "fluxcd-kustomize-controller")
# Workload CRDs inference bundles may hold: LeaderWorkerSet (multi-node vLLM), KEDA, Prometheus operator.
WORKLOAD_CRD_DIRS = ("kubernetes-sigs-lws", "kedacore-keda", "prometheus-operator-prometheus-operator")

_OBJECT_META_REF = (
    "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
)


# --- where the CRDs are ----------------------------------------------------------------------------


def locate_crd_root() -> Path:
    """The CRD folder, or skip (fail under ``CI=true``) when there is none."""
    configured = os.environ.get("KAITO_GEN_CRD_DIR")
    if configured:
        path = Path(configured)
        if not path.is_dir():
            pytest.fail(f"KAITO_GEN_CRD_DIR={configured!r} is not a directory", pytrace=False)
        return path
    if DEFAULT_CRD_ROOT.is_dir():
        return DEFAULT_CRD_ROOT
    reason = (
        f"CRD schemas not found: set KAITO_GEN_CRD_DIR or provide {DEFAULT_CRD_ROOT} "
        "(manifest validation against CRDs is SKIPPED)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


# --- built-in kinds: kubernetes-validate's strict schemas ------------------------------------------


@functools.cache
def _kubernetes_schemas(version: str) -> tuple[Any, Registry[Any]]:
    base = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}-local-strict"
    definitions = Resource.from_contents(json.loads((base / "_definitions.json").read_text()))
    return base, definitions @ Registry()


@functools.cache
def builtin_validator(
    api_version: str, kind: str, version: str = KUBERNETES_VERSION
) -> jsonschema.Draft202012Validator | None:
    """The strict validator of a built-in kind, or None when Kubernetes ``version`` has no such kind."""
    base, registry = _kubernetes_schemas(version)
    group, _, ver = api_version.rpartition("/")
    # kubernetes-validate names files <kind>-<first label of group>-<version>.json
    # (apps/v1 → apps-v1, rbac.authorization.k8s.io/v1 → rbac-v1, v1 → v1).
    suffix = f"{group.split('.')[0]}-{ver}" if group else ver
    path = base / f"{kind.lower()}-{suffix}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    # The file name drops most of the group, so check the exact group/version/kind.
    if {"group": group, "version": ver, "kind": kind} not in schema.get(
        "x-kubernetes-group-version-kind", []
    ):
        return None
    return jsonschema.Draft202012Validator(schema, registry=Resource.from_contents(schema) @ registry)


@functools.cache
def _object_meta_validator(version: str = KUBERNETES_VERSION) -> jsonschema.Draft202012Validator:
    _, registry = _kubernetes_schemas(version)
    return jsonschema.Draft202012Validator({"$ref": _OBJECT_META_REF}, registry=registry)


# --- CEL (x-kubernetes-validations) ----------------------------------------------------------------

_OLD_SELF = re.compile(r"\boldSelf\b")
# cel-go accepts a trailing comma in list literals (the Azure NodePool CRD has one); celpy does not.
_TRAILING_COMMA = re.compile(r",\s*\]")


def _cel_find(value: Any, pattern: Any) -> celtypes.StringType:
    """Kubernetes' regex library: the first match of ``pattern`` in ``value``, or ""."""
    match = re.search(str(pattern), str(value))
    return celtypes.StringType(match.group(0) if match else "")


def _cel_split(value: Any, separator: Any) -> celtypes.ListType:
    """Kubernetes' strings library ``split``."""
    return celtypes.ListType([celtypes.StringType(part) for part in str(value).split(str(separator))])


@functools.cache
def _cel_environment() -> celpy.Environment:
    return celpy.Environment()


@functools.cache
def _cel_program(rule: str) -> Any:
    env = _cel_environment()
    ast = env.compile(_TRAILING_COMMA.sub("]", rule))
    return env.program(ast, functions={"find": _cel_find, "split": _cel_split})


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def cel_errors(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """Evaluate every CEL rule of ``schema`` against ``value`` (schema and instance walked
    together). Transition rules (``oldSelf``) need the previous object and are skipped."""
    found: list[str] = []
    if value is None or not isinstance(schema, Mapping):
        return found
    for rule_spec in schema.get("x-kubernetes-validations", ()):
        rule = rule_spec.get("rule")
        if not isinstance(rule, str) or _OLD_SELF.search(rule):
            continue
        field_path = str(rule_spec.get("fieldPath") or "")
        where = (path + field_path).lstrip(".") if field_path else path
        try:
            result = _cel_program(rule).evaluate({"self": json_to_cel(value)})
        except CELParseError as exc:
            found.append(f"{where or '(root)'}: CEL rule {rule!r} does not compile in celpy: {exc}")
            continue
        except CELEvalError as exc:
            found.append(f"{where or '(root)'}: CEL rule {rule!r} failed to evaluate: {exc.args[0]}")
            continue
        if not (isinstance(result, celtypes.BoolType) and bool(result)):
            found.append(f"{where or '(root)'}: {rule_spec.get('message') or f'failed rule: {rule}'}")
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(props, Mapping) and key in props:
                found += cel_errors(props[key], item, _join(path, key))
            elif isinstance(extra, Mapping):
                found += cel_errors(extra, item, _join(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            found += cel_errors(schema["items"], item, _join(path, index))
    return found


# --- the validator ---------------------------------------------------------------------------------


def _path_message(error: jsonschema.ValidationError, prefix: tuple[str | int, ...] = ()) -> list[str]:
    return [str(v) for v in violations_from_error(error, prefix)]


class ManifestValidator:
    """Validates documents for one provider profile. Build it with :meth:`for_provider`."""

    def __init__(self, catalog: CrdCatalog, *, profile: str, kubernetes_version: str = KUBERNETES_VERSION):
        self.catalog = catalog
        self.profile = profile
        self.kubernetes_version = kubernetes_version

    @classmethod
    def for_provider(cls, provider: Provider, crd_root: Path) -> ManifestValidator:
        """The provider's NodePool/NodeClaim CRDs (and its node class) plus Argo CD and Flux.
        Cached: loading the CRDs happens once per process and folder."""
        if provider not in PROVIDER_CRD_DIRS:
            raise ValueError(f"unknown provider {provider!r}; expected one of {sorted(PROVIDER_CRD_DIRS)}")
        return _for_provider(provider, Path(crd_root).resolve())

    def errors(self, doc: Mapping[str, Any]) -> list[str]:
        """Every problem in ``doc`` as ``"path: message"``; ``[]`` when it is valid."""
        if not isinstance(doc, Mapping):
            return [f"(root): expected a mapping, got {type(doc).__name__}"]
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return ["(root): apiVersion and kind must both be set to strings"]
        entry = self.catalog.entry(api_version, kind)
        found: list[str] = []
        if entry is not None:
            found += [str(v) for v in self.catalog.validate(doc, check_metadata=False)]
            metadata = doc.get("metadata")
            if isinstance(metadata, Mapping):
                for error in _object_meta_validator(self.kubernetes_version).iter_errors(metadata):
                    found += _path_message(error, ("metadata",))
            found += cel_errors(entry.schema, entry.with_defaults(doc))
        elif (validator := builtin_validator(api_version, kind, self.kubernetes_version)) is not None:
            for error in validator.iter_errors(doc):
                found += _path_message(error)
            metadata = doc.get("metadata")
            if not isinstance(metadata, Mapping) or not (
                metadata.get("name") or metadata.get("generateName")
            ):
                found.append("metadata.name: required")
        else:
            found.append(
                f"(root): no schema found for apiVersion {api_version!r} kind {kind!r}: not a built-in kind "
                f"of Kubernetes {self.kubernetes_version} and no CRD in the {self.profile!r} profile"
            )
        return sorted(set(found))

    def assert_valid(self, docs: Iterable[Mapping[str, Any]], context: str = "") -> None:
        """Raise AssertionError listing every error of every document (and fail on no documents)."""
        problems: list[str] = []
        count = 0
        for index, doc in enumerate(docs):
            count += 1
            errors = self.errors(doc)
            if errors:
                problems.append(f"- {_describe(doc, index)}:")
                problems += [f"    {e}" for e in errors]
        where = f" in {context}" if context else ""
        if count == 0:
            raise AssertionError(f"no documents to validate{where}")
        if problems:
            bad = sum(1 for p in problems if p.startswith("- "))
            head = f"{bad} of {count} document(s) invalid{where} (profile {self.profile!r}):"
            raise AssertionError("\n".join([head, *problems]))


def _describe(doc: Any, index: int) -> str:
    if not isinstance(doc, Mapping):
        return f"document {index}"
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    ident = f"{namespace}/{name}" if namespace else str(name)
    return f"document {index} {doc.get('apiVersion')} {doc.get('kind')} {ident}"


@functools.cache
def crd_dir_catalog(path: Path) -> CrdCatalog:
    """The CRDs of one folder, loaded once per process."""
    return CrdCatalog.from_paths([path])


@functools.cache
def _for_provider(provider: str, crd_root: Path) -> ManifestValidator:
    dirs = [*GITOPS_CRD_DIRS, *WORKLOAD_CRD_DIRS, PROVIDER_CRD_DIRS[provider]]
    catalog = CrdCatalog.combine([crd_dir_catalog(crd_root / d) for d in dirs])
    return ManifestValidator(catalog, profile=provider)


ValidatorFactory = Callable[[Provider], ManifestValidator]
