"""``kaito-gen.yaml``: the one validated file that holds every fact about the environment.

The compiler core stays pure because environment facts arrive only through
:class:`~kaito_gen.models.target.Target`; this module reads the repo config,
reports mistakes with ``file:line:col`` like any other input, and maps the
config onto a Target. Command-line flags override it at the CLI edge.
Relative paths in the config (sources, output, presets) are relative to the
directory that holds the config file, so ``kaito-gen render`` works from any
working directory.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr, ValidationError, model_validator

from kaito_gen.core.errors import Diagnostic, InputError, SourcePos
from kaito_gen.core.limits import DEFAULT_LIMITS, Limits, decode_source
from kaito_gen.core.schema_errors import pydantic_diagnostics
from kaito_gen.core.yamlsrc import SourceDoc, parse_documents
from kaito_gen.models.base import Frozen
from kaito_gen.models.monitoring import Monitoring
from kaito_gen.models.target import (
    Autoscaling,
    Engine,
    Features,
    GitopsFlavour,
    GitopsTarget,
    NetworkPolicySettings,
    NodeClassRef,
    Target,
    TargetCloud,
)

CONFIG_API_VERSION = "kaito-gen.io/v1alpha1"
CONFIG_KIND = "Config"
DEFAULT_CONFIG_NAME = "kaito-gen.yaml"
MAX_CONFIG_BYTES = 256 * 1024
MAX_LIST = 256
PATH_LEN = 1024
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Go durations as the Flux CRD accepts them (its pattern), e.g. "10m", "1h30m".
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
# An image reference: [host[:port]/]path[:tag][@sha256:<64 hex>], lowercase repository.
IMAGE_REF = r"^[A-Za-z0-9.\-]+(:[0-9]+)?(/[a-z0-9._\-]+)+(:[\w][\w.\-]{0,127})?(@sha256:[0-9a-f]{64})?$"


class RuntimeImages(Frozen):
    """Full image references per engine; pin them with @sha256:<digest>."""

    vllm: StrictStr | None = Field(default=None, pattern=IMAGE_REF, max_length=PATH_LEN)
    transformers: StrictStr | None = Field(default=None, pattern=IMAGE_REF, max_length=PATH_LEN)


class RuntimeConfig(Frozen):
    registry: StrictStr | None = Field(default=None, min_length=1, max_length=PATH_LEN)
    tag: StrictStr | None = Field(default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
    # The engine for Workspaces without a kaito.sh/runtime annotation (unset: the preset decides).
    default: Engine | None = None
    images: RuntimeImages = RuntimeImages()


class ArgoCdConfig(Frozen):
    """Where Argo CD finds the rendered tree, and how the generated objects look."""

    # Argo CD spells it repoURL, not the camelCase default.
    repo_url: StrictStr = Field(alias="repoURL", min_length=1, max_length=PATH_LEN)
    target_revision: StrictStr = Field(default="HEAD", min_length=1, max_length=255)
    project: StrictStr = Field(default="kaito-gen", pattern=DNS_LABEL, max_length=63)
    namespace: StrictStr = Field(default="argocd", pattern=DNS_LABEL, max_length=63)
    destination_server: StrictStr = Field(
        default="https://kubernetes.default.svc", min_length=1, max_length=PATH_LEN
    )
    # applicationset: one ApplicationSet whose git directory generator finds every bundle;
    # applications: one Application per bundle, listed explicitly.
    mode: Literal["applicationset", "applications"] = "applicationset"
    # Off by default: creating namespaces means allowing the cluster-scoped Namespace kind
    # in the AppProject; the project otherwise allows only karpenter.sh/NodePool.
    create_namespace: StrictBool = False
    # Set when the Karpenter CRDs may arrive in the same sync as the NodePools.
    skip_dry_run_on_missing_resource: StrictBool = True


class FluxSourceRef(Frozen):
    kind: Literal["GitRepository", "OCIRepository", "Bucket"] = "GitRepository"
    # `flux bootstrap` names its GitRepository flux-system.
    name: StrictStr = Field(default="flux-system", pattern=DNS_LABEL, max_length=253)
    namespace: StrictStr | None = Field(default=None, pattern=DNS_LABEL, max_length=63)


class FluxConfig(Frozen):
    namespace: StrictStr = Field(default="flux-system", pattern=DNS_LABEL, max_length=63)
    source_ref: FluxSourceRef = FluxSourceRef()
    interval: StrictStr = Field(default="10m", pattern=DURATION)
    retry_interval: StrictStr = Field(default="2m", pattern=DURATION)
    # NodePools become Ready once their node class is: minutes, not GPU-node time.
    infra_timeout: StrictStr = Field(default="10m", pattern=DURATION)
    # Unset: derived from the slowest workspace (node provisioning + its startup budget).
    timeout: StrictStr | None = Field(default=None, pattern=DURATION)


class GitopsConfig(Frozen):
    flavour: GitopsFlavour = "none"
    # The output directory as a path inside the Git repository (Argo/Flux paths are
    # repository-relative). Unset: the config's `output`.
    path: StrictStr | None = Field(default=None, min_length=1, max_length=PATH_LEN)
    argocd: ArgoCdConfig | None = None
    flux: FluxConfig = FluxConfig()

    @model_validator(mode="after")
    def _needs_argocd(self) -> GitopsConfig:
        if self.flavour == "argocd" and self.argocd is None:
            raise ValueError("flavour argocd needs an `argocd:` section with at least repoURL")
        return self


class LimitsConfig(Frozen):
    """Input limits (core/limits.py); defaults in the README, "Input limits"."""

    max_file_bytes: StrictInt = Field(default=DEFAULT_LIMITS.max_file_bytes, ge=1, le=1 << 30)
    max_depth: StrictInt = Field(default=DEFAULT_LIMITS.max_depth, ge=1, le=1000)
    max_nodes: StrictInt = Field(default=DEFAULT_LIMITS.max_nodes, ge=1, le=10_000_000)
    max_documents: StrictInt = Field(default=DEFAULT_LIMITS.max_documents, ge=1, le=1_000_000)
    max_string: StrictInt = Field(default=DEFAULT_LIMITS.max_string, ge=1, le=1 << 30)
    max_number_digits: StrictInt = Field(default=DEFAULT_LIMITS.max_number_digits, ge=1, le=4000)

    def to_limits(self) -> Limits:
        return Limits(**self.model_dump())


class Config(Frozen):
    """``kaito-gen.yaml`` (apiVersion kaito-gen.io/v1alpha1, kind Config)."""

    api_version: Literal["kaito-gen.io/v1alpha1"]
    kind: Literal["Config"]
    sources: tuple[StrictStr, ...] = Field(default=(), max_length=MAX_LIST)
    output: StrictStr | None = Field(default=None, min_length=1, max_length=PATH_LEN)
    default_namespace: StrictStr | None = Field(default=None, pattern=DNS_LABEL, max_length=63)
    cloud: TargetCloud | None = None
    node_class: NodeClassRef | None = None
    runtime: RuntimeConfig = RuntimeConfig()
    kubernetes_version: StrictStr | None = Field(default=None, pattern=r"^1\.\d+$")
    gitops: GitopsConfig = GitopsConfig()
    presets: tuple[StrictStr, ...] = Field(default=(), max_length=MAX_LIST)
    weights_storage_class: StrictStr | None = Field(default=None, min_length=1, max_length=253)
    features: Features | None = None
    network_policy: NetworkPolicySettings | None = None
    limits: LimitsConfig = LimitsConfig()
    # Prometheus scraping of the inference servers: kind none (default) | ServiceMonitor | PodMonitor.
    monitoring: Monitoring = Monitoring()
    # requirePinned: true → a model whose preset row is `revision: unpinned` is an error.
    require_pinned: StrictBool | None = None
    # KEDA autoscaling of InferenceSets: the scaler and its address (Prometheus by default).
    autoscaling: Autoscaling = Autoscaling()
    # requireDigests: true → a container image without @sha256:<digest> is an error.
    require_digests: StrictBool | None = None


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    doc: SourceDoc
    base_dir: Path  # the directory holding the config file

    def _path(self, text: str) -> Path:
        path = Path(text)
        return path if path.is_absolute() else self.base_dir / path

    def output_path(self) -> Path | None:
        return self._path(self.config.output) if self.config.output else None

    def preset_paths(self) -> list[Path]:
        missing = [i for i, p in enumerate(self.config.presets) if not self._path(p).exists()]
        if missing:
            raise InputError(
                [
                    Diagnostic(
                        self.doc.pos(("presets", i)),
                        ("presets", i),
                        f"preset path {self.config.presets[i]!r} does not exist",
                        hint=f"paths are relative to {self.base_dir}",
                        code="config-path",
                    )
                    for i in missing
                ]
            )
        return [self._path(p) for p in self.config.presets]

    def source_paths(self) -> list[Path]:
        """Every file or directory the ``sources`` globs match, in a stable order."""
        found: dict[str, Path] = {}
        problems: list[Diagnostic] = []
        for index, pattern in enumerate(self.config.sources):
            matches = sorted(glob.glob(os.path.join(self.base_dir, pattern), recursive=True))
            if not matches:
                problems.append(
                    Diagnostic(
                        self.doc.pos(("sources", index)),
                        ("sources", index),
                        f"source glob {pattern!r} matches nothing",
                        hint=f"globs are relative to {self.base_dir}; '**' matches any depth",
                        code="config-path",
                    )
                )
            for match in matches:
                found.setdefault(match, Path(match))
        if problems:
            raise InputError(problems)
        return list(found.values())

    def target(self) -> Target:
        """The config's facts as a Target; anything it leaves unset keeps Target's default."""
        cfg = self.config
        values: dict[str, Any] = Target().model_dump()
        if cfg.cloud is not None:
            values["cloud"] = cfg.cloud
        if cfg.node_class is not None:
            values["node_class"] = cfg.node_class.model_dump()
        if cfg.runtime.registry is not None:
            values["registry"] = cfg.runtime.registry
        if cfg.runtime.tag is not None:
            values["runtime_tag"] = cfg.runtime.tag
        if cfg.runtime.default is not None:
            values["default_engine"] = cfg.runtime.default
        if cfg.runtime.images.vllm is not None:
            values["vllm_image"] = cfg.runtime.images.vllm
        if cfg.runtime.images.transformers is not None:
            values["transformers_image"] = cfg.runtime.images.transformers
        if cfg.kubernetes_version is not None:
            values["kubernetes_version"] = cfg.kubernetes_version
        if cfg.default_namespace is not None:
            values["default_namespace"] = cfg.default_namespace
        if cfg.weights_storage_class is not None:
            values["weights_storage_class"] = cfg.weights_storage_class
        if cfg.require_pinned is not None:
            values["require_pinned"] = cfg.require_pinned
        if cfg.require_digests is not None:
            values["require_digests"] = cfg.require_digests
        if cfg.features is not None:
            values["features"] = cfg.features.model_dump()
        values["monitoring"] = cfg.monitoring.model_dump()
        values["autoscaling"] = cfg.autoscaling.model_dump()
        if cfg.network_policy is not None:
            values["network_policy"] = cfg.network_policy.model_dump()
        skip = cfg.gitops.argocd.skip_dry_run_on_missing_resource if cfg.gitops.argocd else True
        values["gitops"] = GitopsTarget(
            flavour=cfg.gitops.flavour, skip_dry_run_on_missing_resource=skip
        ).model_dump()
        return Target.model_validate(values)


def parse_config(file: str, text: str, base_dir: Path) -> LoadedConfig:
    """Validate one config text; every problem is a positioned diagnostic (InputError)."""
    docs, problems = parse_documents(file, text)
    if problems:
        raise InputError(problems)
    if len(docs) != 1:
        raise InputError(
            [
                Diagnostic(
                    SourcePos(file, docs[1].line if len(docs) > 1 else 1, 1),
                    (),
                    f"expected exactly one YAML document, found {len(docs)}",
                    hint=f"a config file holds one `kind: {CONFIG_KIND}` document",
                    code="config",
                )
            ]
        )
    doc = docs[0]
    if not isinstance(doc.data, dict):
        raise InputError(
            [
                Diagnostic(
                    doc.pos(()),
                    (),
                    "the config must be a mapping",
                    hint=f"start with `apiVersion: {CONFIG_API_VERSION}`",
                    code="config",
                )
            ]
        )
    try:
        config = Config.model_validate(doc.data)
    except ValidationError as exc:
        raise InputError(pydantic_diagnostics(doc, exc, Config)) from None
    return LoadedConfig(config, doc, base_dir)


def load_config(path: Path, display: str | None = None) -> LoadedConfig:
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise InputError(
                [
                    Diagnostic(
                        SourcePos(name, 1, 1),
                        (),
                        f"config file is {size} bytes; the limit is {MAX_CONFIG_BYTES}",
                        code="config",
                    )
                ]
            )
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            [
                Diagnostic(
                    SourcePos(name, 1, 1), (), f"cannot read config file: {exc.strerror or exc}", code="io"
                )
            ]
        ) from None
    text, refused = decode_source(name, data, Limits(max_file_bytes=MAX_CONFIG_BYTES))
    if text is None:
        raise InputError(refused)
    return parse_config(name, text, path.absolute().parent)
