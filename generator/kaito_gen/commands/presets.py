"""`kaito-gen presets list|show`: what the model and GPU tables hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kaito_gen.compiler.load import load_presets


@click.group()
def presets() -> None:
    """Inspect the model and GPU preset tables."""


@presets.command("list")
@click.option("--gpus", is_flag=True, help="List GPU SKUs instead of models.")
@click.option("--cloud", type=click.Choice(["azure", "aws", "arc"]), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.option("--presets", "preset_dirs", multiple=True, type=click.Path(exists=True, path_type=Path))
def list_presets(gpus: bool, cloud: str | None, as_json: bool, preset_dirs: tuple[Path, ...]) -> None:
    """List models (name, HF repo, weights, context, runtime/tuning support) or GPU SKUs."""
    catalog = load_presets(preset_dirs, base=Path.cwd())
    rows: list[dict[str, Any]]
    if gpus:
        rows = [
            {"name": s.name, "cloud": s.cloud, "gpu": s.gpu_model, "count": s.gpu_count,
             "memoryGiB": str(s.gpu_memory_gib), "cc": s.compute_capability or "-",
             "pricePerHour": str(s.price_per_hour) if s.price_per_hour is not None else "-"}
            for s in catalog.skus_for(cloud)
        ]  # fmt: skip
    else:
        rows = [
            {"name": m.name, "hfRepo": m.hf_repo, "weightsGiB": str(m.weights_gib), "context": m.context_length,
             "inference": "yes" if m.runtime.transformers and not m.deprecated else "no",
             "tuning": "yes" if m.tuning is not None and not m.deprecated else "no",
             "engines": "-" if m.deprecated else ",".join(m.supported_engines),
             "revision": m.revision[:8] if m.pinned else m.revision}
            for m in sorted(catalog.models.values(), key=lambda m: m.name)
        ]  # fmt: skip
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("(none)")
        return
    headers = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in headers]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(str(row[h]).ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())


@presets.command("show")
@click.argument("name")
@click.option("--presets", "preset_dirs", multiple=True, type=click.Path(exists=True, path_type=Path))
def show_preset(name: str, preset_dirs: tuple[Path, ...]) -> None:
    """Show one model (by preset name or HF id) or GPU SKU as JSON."""
    catalog = load_presets(preset_dirs, base=Path.cwd())
    item = catalog.find_model(name) or catalog.find_sku(name)
    if item is None:
        from kaito_gen.core.schema_errors import did_you_mean

        hint = did_you_mean(name, [*catalog.model_names(), *(s.name for s in catalog.skus.values())])
        raise click.ClickException(f"no model or GPU SKU named {name!r}" + (f"; {hint}" if hint else ""))
    click.echo(json.dumps(item.model_dump(mode="json", by_alias=True), indent=2))
