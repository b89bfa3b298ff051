"""`kaito-gen render`: compile sources into bundles, or check the committed ones."""

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
    note,
    progress,
    report,
    run_compile,
    settings_from,
    target_options,
)
from kaito_gen.compiler.write import read_tree, unified_diff, write
from kaito_gen.config import DEFAULT_CONFIG_NAME
from kaito_gen.core.errors import ExitCode, OutputError, UsageError
from kaito_gen.review.annotations import ANNOTATION_FORMATS


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    default=None,
    type=click.Path(path_type=Path),
    help="Output directory (replaced as a whole; default: `output` of the config).",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 with a diff if OUTPUT is out of date.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", *ANNOTATION_FORMATS]),
    default="text",
    help="Diagnostics as github workflow commands or a SARIF 2.1.0 log, on stdout (a --check diff goes to stderr).",
)
@config_options
@target_options
@guarded
@annotate_failures
def render(
    sources: tuple[Path, ...],
    out: Path | None,
    check: bool,
    quiet: bool,
    as_json: bool,
    fmt: str,
    preset_dirs: tuple[Path, ...],
    config_file: Path | None,
    gitops_flavour: str | None,
    **target_args: Any,
) -> None:
    """Render SOURCES (files or directories; default: `sources` of kaito-gen.yaml) into
    OUTPUT/<namespace>/<workspace>/, plus OUTPUT/_gitops/ when a GitOps flavour is set."""
    quiet = quiet or as_json
    run = settings_from(config_file, sources, out, preset_dirs, target_args, gitops_flavour)
    if not run.sources:
        raise UsageError(f"no SOURCES given and no `sources` in {DEFAULT_CONFIG_NAME}")
    if run.out is None:
        raise UsageError(f"no -o/--output given and no `output` in {DEFAULT_CONFIG_NAME}")
    progress(f"compiling {len(run.sources)} source(s)", quiet)
    compiled = run_compile(
        run.sources, run.target, run.preset_dirs, exclude=[run.out], gitops=run.gitops, limits=run.limits
    )
    report(compiled, quiet, fmt)
    summary: dict[str, Any] = {
        "output": str(run.out),
        "bundles": [b.path for b in compiled.bundles],
        "files": len(compiled.files) - 1,
        "gitops": run.target.gitops.flavour,
    }
    if check:
        diff = unified_diff(read_tree(run.out), compiled.files)
        summary["upToDate"] = not diff
        if as_json:
            click.echo(json.dumps(summary, indent=2, sort_keys=True))
        if diff:
            if not as_json:
                click.echo(diff, nl=False, err=fmt != "text")
            click.echo(
                f"kaito-gen: {run.out} is out of date; run `kaito-gen render` and commit the result", err=True
            )
            sys.exit(int(ExitCode.DRIFT))
        note(f"{run.out} is up to date ({len(compiled.bundles)} bundles)", quiet, "green")
        return
    progress(f"writing {run.out}", quiet)
    try:
        write(compiled.files, run.out)
    except OSError as exc:
        raise OutputError(f"cannot write {run.out}: {exc}") from exc
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    note(
        f"wrote {len(compiled.bundles)} bundles, {len(compiled.files) - 1} files to {run.out}", quiet, "green"
    )
