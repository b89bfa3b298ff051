"""`kaito-gen explain`: the sizing arithmetic and cost of one workspace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kaito_gen.commands.common import (
    EXIT_CODES_HELP,
    config_options,
    guarded,
    report,
    run_compile,
    settings_from,
    target_options,
)
from kaito_gen.compiler.load import load_presets
from kaito_gen.config import DEFAULT_CONFIG_NAME
from kaito_gen.core.errors import UsageError


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("workspace")
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@config_options
@target_options
@guarded
def explain(
    workspace: str,
    sources: tuple[Path, ...],
    as_json: bool,
    preset_dirs: tuple[Path, ...],
    config_file: Path | None,
    gitops_flavour: str | None,
    **target_args: Any,
) -> None:
    """Explain WORKSPACE (name or namespace/name): SKU and sizing arithmetic, nodes, disk,
    startup budget and cost per hour."""
    from kaito_gen.review.explain import explain as explain_one
    from kaito_gen.review.explain import find_workspace, render_text

    run = settings_from(config_file, sources, None, preset_dirs, target_args)
    if not run.sources:
        raise UsageError(f"no SOURCES given and no `sources` in {DEFAULT_CONFIG_NAME}")
    catalog = load_presets(run.preset_dirs, base=Path.cwd())
    compiled = run_compile(run.sources, run.target, run.preset_dirs, limits=run.limits)
    report(compiled, quiet=True)
    rw = find_workspace(compiled.resolved.workspaces, workspace)
    data = explain_one(rw, catalog, run.target)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(render_text(data), nl=False)
