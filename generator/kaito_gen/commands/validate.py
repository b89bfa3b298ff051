"""`kaito-gen validate`: compile without writing; print the diagnostics."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from kaito_gen.commands.annotate import annotate_failures
from kaito_gen.commands.common import (
    EXIT_CODES_HELP,
    config_options,
    guarded,
    run_compile,
    settings_from,
    target_options,
)
from kaito_gen.config import DEFAULT_CONFIG_NAME
from kaito_gen.core.errors import ExitCode, UsageError, render_diagnostics, sorted_diagnostics
from kaito_gen.review.annotations import ANNOTATION_FORMATS, render_annotations


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", *ANNOTATION_FORMATS]),
    default="text",
    help="github: workflow commands (PR annotations); sarif: SARIF 2.1.0 for code scanning.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@config_options
@target_options
@guarded
@annotate_failures
def validate(
    sources: tuple[Path, ...],
    fmt: str,
    as_json: bool,
    preset_dirs: tuple[Path, ...],
    config_file: Path | None,
    gitops_flavour: str | None,
    **target_args: Any,
) -> None:
    """Validate SOURCES (default: `sources` of kaito-gen.yaml) without writing anything."""
    run = settings_from(config_file, sources, None, preset_dirs, target_args)
    if not run.sources:
        raise UsageError(f"no SOURCES given and no `sources` in {DEFAULT_CONFIG_NAME}")
    compiled = run_compile(run.sources, run.target, run.preset_dirs, limits=run.limits)
    diags = sorted_diagnostics(compiled.diagnostics)
    if fmt in ANNOTATION_FORMATS and not as_json:
        click.echo(render_annotations(fmt, diags, Path.cwd()), nl=False)
    elif fmt == "json" or as_json:
        payload = {
            "ok": compiled.ok,
            "workspaces": [f"{rw.namespace}/{rw.name}" for rw in compiled.resolved.workspaces],
            "diagnostics": [d.to_json() for d in diags],
        }
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        if diags:
            click.echo(render_diagnostics(diags), err=True)
        if compiled.ok:
            click.echo(f"ok: {len(compiled.resolved.workspaces)} workspaces valid")
    if not compiled.ok:
        sys.exit(int(ExitCode.INVALID))
