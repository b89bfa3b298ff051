"""`kaito-gen presets list|show|add|pin`: what the model and GPU tables hold, and adding to them.

`add` and `pin` are the only commands that go to the network (the Hugging Face Hub, commands/hub.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from kaito_gen.commands.common import guarded
from kaito_gen.commands.hub import Hub, HubError
from kaito_gen.compiler.load import load_presets
from kaito_gen.core.errors import ExitCode, UsageError


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


# ---- presets add / pin: the Hugging Face Hub edge (commands/hub.py); the row logic is pure
# (catalog/hfrow.py derives, catalog/presetedit.py edits the YAML text).

DEFAULT_TABLE = Path("presets") / "models.yaml"
_REPO_RE = r"[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*"
_hub_options = [
    click.option(
        "--file",
        "table",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_TABLE,
        show_default=True,
        help="The model preset table to write.",
    ),
    click.option(
        "--endpoint",
        envvar="HF_ENDPOINT",
        default=None,
        help="Hugging Face Hub URL (env HF_ENDPOINT; default https://huggingface.co).",
    ),
    click.option(
        "--token",
        envvar="HF_TOKEN",
        default=None,
        show_envvar=True,
        help="Hugging Face token for gated or private repos (env HF_TOKEN; never printed).",
    ),
]


def _hub_command(func: Any) -> Any:
    for option in reversed(_hub_options):
        func = option(func)
    return guarded(func)


def _validated(text: str, where: str) -> None:
    """The edited table must still load with the built-in tables (fields, names, fits a SKU)."""
    from kaito_gen.catalog.presets import build_catalog
    from kaito_gen.compiler.load import builtin_preset_files
    from kaito_gen.core.errors import InputError
    from kaito_gen.core.yamlsrc import parse_documents

    docs = []
    problems = []
    for name, body in [*builtin_preset_files(), (where, text)]:
        d, p = parse_documents(name, body)
        docs.extend(d)
        problems.extend(p)
    if problems:
        raise InputError(problems)
    build_catalog(docs)


def _refused(exc: Exception) -> NoReturn:
    from kaito_gen.catalog.hfrow import RowRefused

    assert isinstance(exc, RowRefused)
    raise HubError(exc.message, exc.hint) from exc


@presets.command("add")
@click.argument("model", metavar="ORG/MODEL[@REV]")
@_hub_command
def add_preset(model: str, table: Path, endpoint: str | None, token: str | None) -> None:
    """Add (or refresh) the row of a Hugging Face model, pinned to the commit REV resolves to.

    Reads config.json (or a Mistral params.json) and the file listing at that commit and derives
    the row as Kaito's generator does; the model's architecture must be one vLLM supports.
    Review the row before committing it.
    """
    import re

    from kaito_gen.catalog.hfrow import RowRefused, build_row
    from kaito_gen.catalog.presetedit import upsert_model

    repo, _, revision = model.partition("@")
    if not re.fullmatch(_REPO_RE, repo) or (_ and not revision):
        raise UsageError(f"{model!r} is not ORG/MODEL or ORG/MODEL@REVISION (e.g. Qwen/Qwen3-8B@main)")
    snap = Hub(endpoint, token).snapshot(repo, revision or None)
    where = str(table)
    text = table.read_text(encoding="utf-8") if table.exists() else None
    try:
        row = build_row(
            repo, snap.sha, config=snap.config, params=snap.params, files=snap.files, gated=snap.gated
        )
        new_text, action = upsert_model(text, row, where)
    except RowRefused as exc:
        _refused(exc)
    _validated(new_text, where)
    if new_text != text:
        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_text(new_text, encoding="utf-8")
    fmt = " (Mistral format)" if snap.config is None else ""
    click.echo(
        f"{action} {row['name']} ({repo} @ {snap.sha}) in {where}{fmt}: {row['architecture']}, "
        f"{row['weightsGiB']} GiB, context {row['contextLength']}, {row['attention']} "
        f"{row['kvBytesPerToken']} B/token, quantization {row['quantization'] or '-'}"
        + ("; gated: Workspaces need presetOptions.modelAccessSecret" if snap.gated else "")
    )
    if text is None:
        click.echo(f"created {where}: render with `--presets {table.parent}` to use it")


@presets.command("pin")
@click.argument("names", nargs=-1, metavar="[MODEL...]")
@click.option("--all", "pin_all", is_flag=True, help="Pin every row whose revision is `unpinned`.")
@click.option("--check", is_flag=True, help="Only report; exit 1 when a named or unpinned row needs a pin.")
@_hub_command
def pin_presets(
    names: tuple[str, ...], pin_all: bool, check: bool, table: Path, endpoint: str | None, token: str | None
) -> None:
    """Pin rows to the commit their repo's default branch is at now (`revision: <sha>`).

    Named rows are re-pinned; `--all` pins every `revision: unpinned` row.
    """
    from kaito_gen.catalog.hfrow import RowRefused
    from kaito_gen.catalog.presetedit import model_rows, set_revision

    if bool(names) == pin_all:
        raise UsageError("name the models to pin, or pass --all for every unpinned row (not both)")
    if not table.exists():
        raise UsageError(f"{table}: no such preset table (--file)")
    where = str(table)
    text = table.read_text(encoding="utf-8")
    try:
        rows = model_rows(text, where)
    except RowRefused as exc:
        _refused(exc)
    by_key = {k.lower(): r for r in rows for k in (r[0], r[1])}
    missing = [n for n in names if n.lower() not in by_key]
    if missing:
        from kaito_gen.core.schema_errors import did_you_mean

        hint = did_you_mean(missing[0], [k for r in rows for k in r[:2]])
        raise UsageError(
            f"{where}: no row named {', '.join(map(repr, missing))}" + (f"; {hint}" if hint else "")
        )
    chosen = [by_key[n.lower()] for n in names] if names else [r for r in rows if r[2] == "unpinned"]
    hub = Hub(endpoint, token)
    stale = 0
    new_text = text
    for name, repo, revision in dict.fromkeys(chosen):
        sha, _ = hub.commit(repo, None)
        if sha == revision:
            click.echo(f"{name}: pinned to {sha} (current)")
            continue
        stale += 1
        if check:
            click.echo(f"{name}: {revision} -> {sha} (would pin)")
            continue
        try:
            new_text = set_revision(new_text, name, sha, where)
        except RowRefused as exc:
            _refused(exc)
        click.echo(f"{name}: {revision} -> {sha}")
    if not chosen:
        click.echo("no unpinned rows")
    if check:
        if stale:
            sys.exit(int(ExitCode.DRIFT))
        return
    if new_text != text:
        _validated(new_text, where)
        table.write_text(new_text, encoding="utf-8")
