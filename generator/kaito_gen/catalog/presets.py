"""The preset catalog: model and GPU tables, validated when they are built.

Built from parsed YAML documents (``load`` reads the files), so every problem
points at the preset file and line. Later tables override earlier ones entry by
entry, which is how ``--presets DIR`` adds models and SKUs without code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import ValidationError

from kaito_gen.catalog.sizing import skus_that_fit
from kaito_gen.core.errors import Diagnostic, PresetError
from kaito_gen.core.schema_errors import pydantic_diagnostics
from kaito_gen.core.yamlsrc import SourceDoc
from kaito_gen.models.mig import MigGpu, MigProfile, MigProfileTable
from kaito_gen.models.presets import GpuSku, GpuSkuTable, ModelPreset, ModelPresetTable, PriceInfo


@dataclass(frozen=True)
class PresetCatalog:
    models: dict[str, ModelPreset]  # by lowercase preset name
    skus: dict[str, GpuSku]  # by lowercase SKU name
    prices: PriceInfo | None = None
    sources: tuple[str, ...] = field(default=())
    mig_gpus: tuple[MigGpu, ...] = field(default=())
    _by_repo: dict[str, ModelPreset] = field(default_factory=dict, repr=False)

    def find_model(self, name: str) -> ModelPreset | None:
        """A preset by short name (``phi-3-mini-4k-instruct``) or HF id, case-insensitively."""
        key = name.strip().lower()
        return self.models.get(key) or self._by_repo.get(key)

    def find_sku(self, name: str) -> GpuSku | None:
        return self.skus.get(name.strip().lower())

    def model_names(self) -> list[str]:
        return sorted({m.name for m in self.models.values()} | {m.hf_repo for m in self.models.values()})

    def mig_profiles(self, sku: GpuSku | None) -> dict[str, MigProfile]:
        """MIG profiles by name: those of ``sku``'s GPU (model and per-GPU memory), or of every GPU
        in the table when ``sku`` is None (BYO nodes without instanceType, Kaito's flat list)."""
        out: dict[str, MigProfile] = {}
        for gpu in self.mig_gpus:
            if sku is None or (gpu.gpu_model == sku.gpu_model and gpu.gpu_memory_gib == sku.gpu_memory_gib):
                for profile in gpu.profiles:
                    out.setdefault(profile.name, profile)
        return out

    def skus_for(self, cloud: str | None) -> list[GpuSku]:
        return sorted(
            (
                s
                for s in self.skus.values()
                if s.refused is None and (cloud in (None, "byo") or s.cloud == cloud)
            ),
            key=lambda s: s.name,
        )


_TABLES: dict[str, type[ModelPresetTable] | type[GpuSkuTable] | type[MigProfileTable]] = {
    "ModelPresetTable": ModelPresetTable,
    "GpuSkuTable": GpuSkuTable,
    "MigProfileTable": MigProfileTable,
}


def _table(doc: SourceDoc) -> tuple[str, list[Diagnostic]]:
    kind = doc.data.get("kind") if isinstance(doc.data, dict) else None
    if kind in _TABLES:
        return str(kind), []
    return "", [
        Diagnostic(
            doc.pos(("kind",)),
            ("kind",),
            f"not a preset table (kind {kind!r})",
            hint="preset files hold `kind: ModelPresetTable`, `kind: GpuSkuTable` or `kind: MigProfileTable`",
            code="preset-kind",
        )
    ]


def build_catalog(docs: Sequence[SourceDoc], *, check_fit: bool = True) -> PresetCatalog:
    """Validate preset documents in order (later ones override) and index them.

    Raises PresetError with every problem found.
    """
    problems: list[Diagnostic] = []
    models: dict[str, tuple[ModelPreset, SourceDoc, int]] = {}
    skus: dict[str, tuple[GpuSku, SourceDoc, int]] = {}
    prices: PriceInfo | None = None
    mig: dict[tuple[str, str], MigGpu] = {}  # (gpuModel, memory): later tables override
    for doc in docs:
        kind, errs = _table(doc)
        problems.extend(errs)
        if not kind:
            continue
        model_cls = _TABLES[kind]
        try:
            table = model_cls.model_validate(doc.data)
        except ValidationError as exc:
            problems.extend(pydantic_diagnostics(doc, exc, model_cls))
            continue
        if isinstance(table, ModelPresetTable):
            _merge(doc, "models", table.models, models, problems)
        elif isinstance(table, MigProfileTable):
            mig.update({(g.gpu_model, str(g.gpu_memory_gib)): g for g in table.gpus})
        else:
            assert isinstance(table, GpuSkuTable)
            prices = table.prices or prices
            _merge(doc, "skus", table.skus, skus, problems)
    if problems:
        raise PresetError(problems)
    catalog = PresetCatalog(
        models={k: v[0] for k, v in models.items()},
        skus={k: v[0] for k, v in skus.items()},
        prices=prices,
        sources=tuple(dict.fromkeys(d.file for d in docs)),
        mig_gpus=tuple(mig.values()),
        _by_repo={v[0].hf_repo.lower(): v[0] for v in models.values()},
    )
    if check_fit:
        _check_fit(catalog, models, problems)
    if problems:
        raise PresetError(problems)
    return catalog


_Entry = TypeVar("_Entry", ModelPreset, GpuSku)


def _merge(
    doc: SourceDoc,
    key: str,
    entries: Iterable[_Entry],
    into: dict[str, tuple[_Entry, SourceDoc, int]],
    problems: list[Diagnostic],
) -> None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        name = entry.name.lower()
        if name in seen:
            problems.append(
                Diagnostic(
                    doc.pos((key, index, "name")),
                    (key, index, "name"),
                    f"duplicate name {entry.name!r} (also entry {seen[name]} of this file)",
                    hint="names are case-insensitive and must be unique within a table",
                    code="preset-duplicate",
                )
            )
            continue
        seen[name] = index
        into[name] = (entry, doc, index)  # later files override earlier ones


def _check_fit(
    catalog: PresetCatalog, models: dict[str, tuple[ModelPreset, SourceDoc, int]], problems: list[Diagnostic]
) -> None:
    """Every model must fit some NVIDIA SKU (possibly across several nodes)."""
    skus = [s for s in catalog.skus.values() if s.refused is None]
    for model, doc, index in models.values():
        if model.deprecated:
            continue
        if not skus_that_fit(model, skus, 2048, one_node=False):
            problems.append(
                Diagnostic(
                    doc.pos(("models", index, "weightsGiB")),
                    ("models", index, "weightsGiB"),
                    f"model {model.name!r} ({model.weights_gib} GiB) fits no GPU SKU in the tables",
                    hint="add a larger SKU to a gpus table, or check weightsGiB",
                    code="preset-no-fit",
                )
            )
