"""Stage 3, ``resolve``: bind each Workspace to its model, GPU SKU and referenced objects.

Input: :class:`~kaito_gen.compiler.validate.Validated`, the :class:`PresetCatalog`, the :class:`Target`.
Output: :class:`Resolved` — one :class:`ResolvedWorkspace` per valid Workspace, plus
diagnostics. Sizing happens here (Kaito's estimator, §3.2), with the arithmetic
kept for ``explain`` and the node-count annotation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from kaito_gen.catalog.hfrow import unknown_model
from kaito_gen.catalog.presets import PresetCatalog
from kaito_gen.catalog.sizing import DEFAULT_CONTEXT, Sizing, estimate, max_context_one_node, skus_that_fit
from kaito_gen.compiler.adapters import ResolvedAdapter, resolve_adapters
from kaito_gen.compiler.configmaps import (
    DEFAULT_OUTPUT_DIR,
    INFERENCE_KEY,
    TRAINING_KEY,
    check_training_config,
    default_training_config,
    inference_max_model_len,
    parse_embedded,
)
from kaito_gen.compiler.engine import RUNTIME_ANNOTATION, choose_engine
from kaito_gen.compiler.partition import PartitionPlan, resolve_partition
from kaito_gen.compiler.validate import V1ALPHA1_DEFAULT_INSTANCE_TYPE, ObjectInput, Validated, WorkspaceInput
from kaito_gen.core.errors import Diagnostic, FieldPath, Severity
from kaito_gen.core.schema_errors import did_you_mean
from kaito_gen.models.presets import GpuSku, ModelPreset
from kaito_gen.models.target import Engine, Target
from kaito_gen.models.workspace import DataSource, Workspace

Mode = Literal["inference", "tuning"]
BYPASS = "kaito.sh/bypass-resource-checks"
# Object kinds a Workspace may reference by name and that travel with its bundle.
SECRET_KINDS = ("Secret", "SealedSecret", "ExternalSecret")


@dataclass(frozen=True)
class ResolvedWorkspace:
    input: WorkspaceInput
    mode: Mode
    model: ModelPreset | None  # None for template workspaces
    sku: GpuSku | None  # None for BYO nodes without an instanceType
    provisioner: Literal["karpenter", "byo"]
    node_count: int
    node_count_reason: str
    sizing: Sizing | None
    max_model_len: int | None
    dtype: str
    adapters: tuple[ResolvedAdapter, ...]
    config_map: ObjectInput | None  # the user's inference/training ConfigMap
    training_config: str | None  # default training config text when the user gave none
    tuning_method: str | None
    output_dir: str
    references: tuple[ObjectInput, ...] = field(default=())
    engine: Engine = "transformers"
    engine_reason: str = ""
    partition: PartitionPlan | None = None  # resource.partition: MIG slice or GPU count per pod

    @property
    def workspace(self) -> Workspace:
        return self.input.workspace

    @property
    def name(self) -> str:
        return self.input.workspace.name

    @property
    def namespace(self) -> str:
        return self.input.namespace

    @property
    def gpus_per_node(self) -> int:
        return self.partition.devices if self.partition else self.sku.gpu_count if self.sku else 1

    @property
    def gpu_share(self) -> Decimal:
        """GPUs' worth of the node one pod takes, for sizing its CPU and memory (a MIG slice: a fraction)."""
        return self.partition.gpu_share if self.partition else Decimal(self.gpus_per_node)

    @property
    def gpu_resource(self) -> str:
        """The extended resource each pod requests: a MIG slice, or the SKU vendor's GPUs."""
        return (
            self.partition.resource
            if self.partition
            else self.sku.gpu_resource
            if self.sku
            else "nvidia.com/gpu"
        )


@dataclass(frozen=True)
class Resolved:
    workspaces: tuple[ResolvedWorkspace, ...]
    objects: Mapping[tuple[str, str, str], ObjectInput]
    diagnostics: tuple[Diagnostic, ...]


class _Ctx:
    def __init__(
        self,
        wi: WorkspaceInput,
        catalog: PresetCatalog,
        target: Target,
        objects: Mapping[tuple[str, str, str], ObjectInput],
    ) -> None:
        self.wi = wi
        self.ws = wi.workspace
        self.catalog = catalog
        self.target = target
        self.objects = objects
        self.found: list[Diagnostic] = []
        self.bypass = BYPASS in self.ws.annotations
        self.references: list[ObjectInput] = []

    def error(
        self, path: FieldPath, message: str, hint: str = "", code: str = "", soft: bool = False
    ) -> None:
        severity = Severity.WARNING if soft and self.bypass else Severity.ERROR
        if soft and self.bypass:
            message += f" (downgraded to a warning by {BYPASS})"
        pos, shown = self.wi.doc.pos(path), self.wi.shown(path)  # shown: the path as the user wrote it
        self.found.append(Diagnostic(pos, shown, message, hint=hint, severity=severity, code=code))

    def warn(self, path: FieldPath, message: str, hint: str = "", code: str = "") -> None:
        pos, shown = self.wi.doc.pos(path), self.wi.shown(path)
        self.found.append(Diagnostic(pos, shown, message, hint=hint, severity=Severity.WARNING, code=code))

    def lookup(self, kind: str, name: str) -> ObjectInput | None:
        return self.objects.get((kind, self.wi.namespace, name))

    def reference(self, kinds: tuple[str, ...], name: str) -> ObjectInput | None:
        for kind in kinds:
            obj = self.lookup(kind, name)
            if obj is not None:
                if obj not in self.references:
                    self.references.append(obj)
                return obj
        return None


def resolve(validated: Validated, catalog: PresetCatalog, target: Target) -> Resolved:
    diagnostics: list[Diagnostic] = list(validated.diagnostics)
    failed = {d.pos.file for d in validated.diagnostics if d.is_error}
    out: list[ResolvedWorkspace] = []
    for wi in validated.workspaces:
        ctx = _Ctx(wi, catalog, target, validated.objects)
        result = _resolve_one(ctx)
        diagnostics.extend(ctx.found)
        if result is not None and not any(d.is_error for d in ctx.found) and wi.doc.file not in failed:
            out.append(result)
    diagnostics.extend(_unreferenced(validated, out))
    return Resolved(tuple(out), validated.objects, tuple(diagnostics))


def _unreferenced(validated: Validated, resolved: list[ResolvedWorkspace]) -> list[Diagnostic]:
    used = {id(obj) for rw in resolved for obj in rw.references}
    referenced_names = {(obj.kind, obj.namespace, obj.name) for rw in resolved for obj in rw.references}
    out = []
    for key, obj in sorted(validated.objects.items()):
        if id(obj) in used or key in referenced_names:
            continue
        out.append(
            Diagnostic(
                obj.doc.pos(("metadata", "name")),
                ("metadata", "name"),
                f"{obj.kind} {obj.namespace}/{obj.name} is not referenced by any Workspace and is not emitted",
                hint="reference it from a Workspace, or keep it out of the input paths",
                severity=Severity.WARNING,
                code="unreferenced",
            )
        )
    return out


def _resolve_one(ctx: _Ctx) -> ResolvedWorkspace | None:
    ws = ctx.ws
    mode: Mode = "inference" if ws.inference is not None else "tuning"
    preset_spec = ws.inference.preset if ws.inference is not None else ws.tuning.preset if ws.tuning else None
    base: FieldPath = (mode, "preset", "name")
    model: ModelPreset | None = None
    if preset_spec is not None:
        model = _model(ctx, preset_spec.name, base, mode)
    sku = _sku(ctx)
    part = resolve_partition(ctx, model, sku) if mode == "inference" else None
    fit_sku = part.sizing_sku if part else sku  # a MIG slice is sized as one GPU (Kaito §3.2)
    provisioner: Literal["karpenter", "byo"] = "byo" if ctx.target.cloud == "byo" else "karpenter"
    if provisioner == "karpenter" and ctx.target.resolved_node_class() is None:
        ctx.error(
            ("resource", "instanceType"),
            f"cloud {ctx.target.cloud!r} has no default Karpenter node class",
            hint="set nodeClass in kaito-gen.yaml (group, kind, name), or use cloud: byo",
            code="node-class",
        )
    count = (ws.resource.count if ws.resource else None) or 1
    config_map = _config_map(ctx, mode)
    method = ws.tuning.method.lower() if ws.tuning and ws.tuning.method else None
    sizing: Sizing | None = None
    max_len: int | None = None
    training_config: str | None = None
    output_dir = DEFAULT_OUTPUT_DIR
    one_node = model is None or fit_sku is None or estimate(model, fit_sku, DEFAULT_CONTEXT).fits_one_node
    engine, engine_reason = choose_engine(ws, model, ctx.target, one_node)
    if mode == "inference":
        reason = (
            f"resource.count={count}: the transformers runtime runs one full replica per node (Kaito §3.3)"
            if ws.resource and ws.resource.count
            else "resource.count unset: 1 node (the CRD default)"
        )
        if model is not None and engine == "vllm":
            from kaito_gen.compiler.vllmsize import admit_vllm, size_vllm

            admit_vllm(ctx, model)
            if config_map is not None:
                from kaito_gen.compiler.vllmargs import check_vllm_section

                ctx.found.extend(check_vllm_section(config_map))
            sizing, max_len, count, reason = size_vllm(
                ctx,
                model,
                fit_sku,
                _configured_len(ctx, model, config_map),
                count,
                bool(part and part.profile),
            )
        elif model is not None:
            if not model.runtime.transformers:
                ctx.error(
                    base,
                    f"model {model.name} does not support inference with Huggingface Transformers runtime",
                    hint=f"serve it with vLLM: annotate {RUNTIME_ANNOTATION}: vllm (or drop a transformers override)",
                    code="runtime",
                )
            sizing, max_len = _size_inference(ctx, model, fit_sku, config_map)
    else:
        count = 1
        reason = "tuning always runs on exactly 1 node (Kaito §3.2)"
        if model is not None and method in ("lora", "qlora"):
            _size_tuning(ctx, model, sku, method)
            training_config, output_dir = _training_config(ctx, method, sku, config_map)
    _secrets(ctx, mode)
    _volumes(ctx)
    dtype = _dtype(model, sku)
    adapters = resolve_adapters(ws)
    if model is None and preset_spec is not None:
        return None
    return ResolvedWorkspace(
        input=ctx.wi,
        mode=mode,
        model=model,
        sku=sku,
        provisioner=provisioner,
        node_count=count,
        node_count_reason=reason,
        sizing=sizing,
        max_model_len=max_len,
        dtype=dtype,
        adapters=adapters,
        config_map=config_map,
        training_config=training_config,
        tuning_method=method,
        output_dir=output_dir,
        references=tuple(ctx.references),
        engine=engine,
        engine_reason=engine_reason,
        partition=part,
    )


def _model(ctx: _Ctx, name: str, path: FieldPath, mode: Mode) -> ModelPreset | None:
    model = ctx.catalog.find_model(name)
    if model is None:
        message, hint = unknown_model(name, mode, ctx.catalog.model_names())
        ctx.error(path, message, hint=hint, code="preset")
        return None
    if model.deprecated:
        ctx.error(path, f"Model {name} is deprecated and no longer supported", code="preset")
        return None
    if not model.pinned:
        from kaito_gen.catalog.pinning import unpinned_hint, unpinned_message

        required = ctx.target.require_pinned
        report = ctx.error if required else ctx.warn
        report(path, unpinned_message(model), hint=unpinned_hint(model, required), code="unpinned")
    if mode == "tuning" and model.tuning is None:
        ctx.error(
            path,
            f"model {name} does not support tuning",
            hint="`kaito-gen presets list` shows which models do",
            code="tuning",
        )
        return None
    return model


def _sku(ctx: _Ctx) -> GpuSku | None:
    res = ctx.ws.resource
    name = res.instance_type if res else None
    if not name and ctx.ws.api_version == "kaito.sh/v1alpha1" and ctx.target.cloud != "byo":
        name = V1ALPHA1_DEFAULT_INSTANCE_TYPE
    if not name:
        if ctx.ws.tuning is not None:
            ctx.error(
                ("resource",),
                "tuning needs resource.instanceType to size the job, also on BYO nodes",
                hint="name the SKU of your nodes, e.g. Standard_NC24ads_A100_v4",
                code="instance-type",
            )
        return None
    path: FieldPath = ("resource", "instanceType")
    sku = ctx.catalog.find_sku(name)
    if sku is None:
        cloud = ctx.target.cloud
        names = [s.name for s in ctx.catalog.skus_for(cloud)]
        ctx.error(
            path,
            f"{name!r} is not a known GPU SKU" + ("" if cloud == "byo" else f" for cloud {cloud}"),
            hint=did_you_mean(name, names) or "add it to a GPU table with --presets DIR",
            code="instance-type",
        )
        return None
    if sku.refused:
        ctx.error(path, f"{sku.name} ({sku.gpu_model}) is not supported: {sku.refused}", code="instance-type")
        return None
    if ctx.target.cloud != "byo" and sku.cloud != ctx.target.cloud:
        ctx.error(
            path,
            f"{sku.name} is a {sku.cloud} instance type, but the target cloud is {ctx.target.cloud}",
            hint="set the cloud in kaito-gen.yaml (or --cloud) to match",
            code="instance-type",
        )
    if sku.gpu_vendor != "nvidia":
        ctx.error(
            path,
            f"{sku.name} has {sku.gpu_model} accelerators; the kaito-runtime image needs NVIDIA CUDA GPUs",
            hint="choose an NVIDIA SKU (`kaito-gen presets list --gpus`)",
            code="instance-type",
        )
    return sku


def _fit_hint(ctx: _Ctx, model: ModelPreset, context: int) -> str:
    cloud = None if ctx.target.cloud == "byo" else ctx.target.cloud
    fits = skus_that_fit(model, ctx.catalog.skus_for(cloud), context, one_node=True)
    if not fits:
        return "no single node of this cloud fits it"
    names = ", ".join(f"{s.name} ({s.gpu_count}x{s.gpu_memory_gib}GiB)" for s, _ in fits[:6])
    more = f" and {len(fits) - 6} more" if len(fits) > 6 else ""
    return f"SKUs that fit, smallest first: {names}{more}"


def _size_inference(
    ctx: _Ctx, model: ModelPreset, sku: GpuSku | None, config_map: ObjectInput | None
) -> tuple[Sizing | None, int | None]:
    configured = _configured_len(ctx, model, config_map)
    if sku is None:
        return None, configured
    sizing = estimate(model, sku, DEFAULT_CONTEXT)
    if not sizing.fits_one_node:
        ctx.error(
            ("resource", "instanceType"),
            f"Insufficient total GPU memory: {sku.name} has {sku.gpu_count}x{sku.gpu_memory_gib} GiB, "
            f"but {model.name} needs {sizing.gpus_needed or 'more than'} such GPU(s) at a {DEFAULT_CONTEXT}-token context "
            "(Multi-node distributed inference is not supported with Huggingface Transformers runtime)",
            hint=_fit_hint(ctx, model, DEFAULT_CONTEXT)
            + f"; or serve it across nodes with vLLM: annotate {RUNTIME_ANNOTATION}: vllm",
            code="gpu-memory",
            soft=True,
        )
        return sizing, configured
    fitting = max_context_one_node(model, sku)
    if configured is not None and configured > fitting:
        ctx.error(
            ("inference", "config"),
            f"max-model-len {configured} does not fit beside the weights on {sku.name}; at most {fitting} tokens do",
            hint=_fit_hint(ctx, model, configured),
            code="gpu-memory",
            soft=True,
        )
        return estimate(model, sku, configured), configured
    context = configured or fitting
    return estimate(model, sku, context), context


def _configured_len(ctx: _Ctx, model: ModelPreset, config_map: ObjectInput | None) -> int | None:
    if config_map is None or ctx.ws.inference is None:
        return None
    check = parse_embedded(
        config_map, INFERENCE_KEY, ctx.wi.doc.pos(("inference", "config")), ("inference", "config")
    )
    ctx.found.extend(check.diagnostics)
    if check.parsed is None:
        return None
    value, problem = inference_max_model_len(check.parsed)
    if problem:
        ctx.found.append(
            Diagnostic(
                config_map.doc.pos(("data", INFERENCE_KEY)),
                ("data", INFERENCE_KEY),
                problem,
                code="inference-config",
            )
        )
        return None
    if value is not None and value > model.context_length:
        ctx.found.append(
            Diagnostic(
                config_map.doc.pos(("data", INFERENCE_KEY)),
                ("data", INFERENCE_KEY),
                f"max-model-len {value} exceeds {model.name}'s context of {model.context_length} tokens",
                hint=f"set max-model-len to at most {model.context_length}",
                code="inference-config",
            )
        )
        return None
    return value


def _size_tuning(ctx: _Ctx, model: ModelPreset, sku: GpuSku | None, method: str) -> None:
    if sku is None or model.tuning is None:
        return
    need = model.tuning.qlora_gpu_memory_gib if method == "qlora" else model.tuning.lora_gpu_memory_gib
    if need > sku.total_memory_gib:
        cloud = None if ctx.target.cloud == "byo" else ctx.target.cloud
        fits = sorted(
            (
                s
                for s in ctx.catalog.skus_for(cloud)
                if s.gpu_vendor == "nvidia" and s.total_memory_gib >= need
            ),
            key=lambda s: (s.gpu_count, s.total_memory_gib, s.name),
        )
        other = "qlora" if method == "lora" else ""
        hint = (
            "SKUs that fit, smallest first: " + ", ".join(s.name for s in fits[:6]) if fits else "no SKU fits"
        )
        if other:
            hint += f"; or use method: {other} ({model.tuning.qlora_gpu_memory_gib} GiB)"
        ctx.error(
            ("resource", "instanceType"),
            f"{method} tuning of {model.name} needs {need} GiB of GPU memory; {sku.name} has {sku.total_memory_gib} GiB",
            hint=hint,
            code="gpu-memory",
            soft=True,
        )


def _config_map(ctx: _Ctx, mode: Mode) -> ObjectInput | None:
    spec = ctx.ws.inference if mode == "inference" else ctx.ws.tuning
    name = spec.config if spec is not None else None
    if not name:
        return None
    obj = ctx.reference(("ConfigMap",), name)
    if obj is None:
        known = [n for (k, ns, n) in ctx.objects if k == "ConfigMap" and ns == ctx.wi.namespace]
        ctx.error(
            (mode, "config"),
            f"ConfigMap {name!r} is not among the inputs (namespace {ctx.wi.namespace})",
            hint=did_you_mean(name, known)
            or "commit the ConfigMap next to the Workspace and pass it to kaito-gen",
            code="configmap-missing",
        )
    return obj


def _training_config(
    ctx: _Ctx, method: str, sku: GpuSku | None, config_map: ObjectInput | None
) -> tuple[str | None, str]:
    bf16 = sku.supports_bf16 if sku else True
    if config_map is None:
        return default_training_config(method, bf16=bf16), DEFAULT_OUTPUT_DIR
    check = parse_embedded(
        config_map, TRAINING_KEY, ctx.wi.doc.pos(("tuning", "config")), ("tuning", "config")
    )
    ctx.found.extend(check.diagnostics)
    if check.parsed is None:
        return None, DEFAULT_OUTPUT_DIR
    out_dir, problems = check_training_config(
        check.parsed, method, config_map.doc.pos(("data", TRAINING_KEY))
    )
    ctx.found.extend(problems)
    return None, out_dir


def _secrets(ctx: _Ctx, mode: Mode) -> None:
    """Cross-check referenced Secrets that are among the inputs (sealed or plain)."""
    ws = ctx.ws
    wanted: list[tuple[FieldPath, str, str]] = []  # (path, name, required type)
    spec = ws.inference.preset if ws.inference else ws.tuning.preset if ws.tuning else None
    opts = spec.preset_options if spec else None
    if opts and opts.model_access_secret:
        wanted.append(
            ((mode, "preset", "presetOptions", "modelAccessSecret"), opts.model_access_secret, "Opaque")
        )
    elif spec is not None:
        model = ctx.catalog.find_model(spec.name)
        if model is not None and model.download_auth_required:
            ctx.error(
                (mode, "preset"),
                f"{model.hf_repo} is gated on Hugging Face; a token is needed to download it",
                hint="set presetOptions.modelAccessSecret to a Secret with key HF_TOKEN",
                code="model-access",
            )
    for i, secret in enumerate((opts.image_pull_secrets or ()) if opts else ()):
        wanted.append(
            (
                (mode, "preset", "presetOptions", "imagePullSecrets", i),
                secret,
                "kubernetes.io/dockerconfigjson",
            )
        )
    if ws.tuning and ws.tuning.output and ws.tuning.output.image_push_secret:
        wanted.append(
            (
                ("tuning", "output", "imagePushSecret"),
                ws.tuning.output.image_push_secret,
                "kubernetes.io/dockerconfigjson",
            )
        )
    sources: list[tuple[FieldPath, DataSource]] = []
    if ws.tuning and ws.tuning.input:
        sources.append((("tuning", "input"), ws.tuning.input))
    for i, adapter in enumerate((ws.inference.adapters or ()) if ws.inference else ()):
        if adapter.source:
            sources.append((("inference", "adapters", i, "source"), adapter.source))
    for base, src in sources:
        for j, secret in enumerate(src.image_pull_secrets or ()):
            wanted.append(((*base, "imagePullSecrets", j), secret, "kubernetes.io/dockerconfigjson"))
    for path, name, secret_type in wanted:
        obj = ctx.reference(SECRET_KINDS, name)
        if obj is not None and obj.kind == "Secret":
            actual = obj.data.get("type", "Opaque")
            if actual != secret_type and secret_type != "Opaque":
                ctx.error(
                    path,
                    f"Secret {name!r} has type {actual}; {secret_type} is needed here",
                    code="secret-type",
                )
        if name == "HF_TOKEN":
            ctx.warn(path, "this names a Secret, not the token itself", code="secret")


def _volumes(ctx: _Ctx) -> None:
    """PVCs named by volumeSources travel with the bundle when they are among the inputs."""
    ws = ctx.ws
    sources: list[Mapping[str, Any] | None] = []
    if ws.tuning:
        sources += [
            ws.tuning.input.volume_source if ws.tuning.input else None,
            ws.tuning.output.volume_source if ws.tuning.output else None,
        ]
    if ws.inference:
        sources += [a.source.volume_source for a in ws.inference.adapters or () if a.source]
    for vs in sources:
        if not vs:
            continue
        pvc = vs.get("persistentVolumeClaim")
        if isinstance(pvc, dict) and isinstance(pvc.get("claimName"), str):
            ctx.reference(("PersistentVolumeClaim",), pvc["claimName"])
        cm = vs.get("configMap")
        if isinstance(cm, dict) and isinstance(cm.get("name"), str):
            ctx.reference(("ConfigMap",), cm["name"])
        secret = vs.get("secret")
        if isinstance(secret, dict) and isinstance(secret.get("secretName"), str):
            ctx.reference(SECRET_KINDS, secret["secretName"])


def _dtype(model: ModelPreset | None, sku: GpuSku | None) -> str:
    from kaito_gen.catalog.dtype import serve_dtype

    return serve_dtype(model, sku)


def total_gpus(rw: ResolvedWorkspace) -> int:
    return rw.node_count * rw.gpus_per_node


def hourly_cost(rw: ResolvedWorkspace) -> Decimal | None:
    if rw.sku is None or rw.sku.price_per_hour is None:
        return None
    return rw.sku.price_per_hour * rw.node_count
