"""The command line: file I/O and environment facts at the edge, the pure pipeline inside.

Exit codes (also in README and ``kaito-gen --help``):

    0  success
    1  `render --check`: the committed output is out of date (a diff is printed)
    2  invalid input, configuration or usage (diagnostics are printed)
    3  internal error (a bug: please report it; KAITO_GEN_DEBUG=1 shows the traceback)
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import ExitCode, InputError, KaitoGenError, OutputError, UsageError, render_diagnostics, sorted_diagnostics
from .load import load, load_presets
from .models.target import NodeClassRef, Target
from .pipeline import Compiled, compile_inputs
from .write import read_tree, unified_diff, write

EXIT_CODES_HELP = """\b
Exit codes:
  0  success
  1  render --check: committed output is out of date
  2  invalid input, configuration or usage
  3  internal error (a bug)"""

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: ExitCode = ExitCode.INVALID) -> None:
    click.echo(f"kaito-gen: {message}", err=True)
    sys.exit(int(code))


def guarded(func: F) -> F:
    """Map every outcome to the published exit codes; never show a traceback by accident."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            click.echo(render_diagnostics(exc.diagnostics), err=True)
            sys.exit(int(ExitCode.INVALID))
        except KaitoGenError as exc:
            _fail(str(exc), exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("KAITO_GEN_DEBUG") == "1":
                traceback.print_exc()
            _fail(f"internal error: {type(exc).__name__}: {exc} (set KAITO_GEN_DEBUG=1 for a traceback)", ExitCode.INTERNAL)

    return wrapper  # type: ignore[return-value]


def target_options(func: F) -> F:
    options = [
        click.option("--cloud", type=click.Choice(["azure", "aws", "arc", "byo"]), default=None, help="Target cloud (default azure)."),
        click.option("--node-class", default=None, metavar="GROUP/KIND/NAME", help="Karpenter node class reference."),
        click.option("--registry", default=None, help="Registry of the kaito-runtime image."),
        click.option("--runtime-tag", default=None, help="Tag of the kaito-runtime image."),
        click.option("--namespace", "default_namespace", default=None, help="Namespace for Workspaces that name none."),
        click.option("--presets", "preset_dirs", multiple=True, type=click.Path(exists=True, path_type=Path), help="Extra preset tables (file or dir; repeatable; later wins)."),
        click.option("--allow-secrets", is_flag=True, default=False, help="Accept plain Secrets with data in the input (they would be committed)."),
        click.option("--weights-storage-class", default=None, help="StorageClass for model weights on NVMe SKUs."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_target(
    cloud: str | None,
    node_class: str | None,
    registry: str | None,
    runtime_tag: str | None,
    default_namespace: str | None,
    allow_secrets: bool,
    weights_storage_class: str | None,
    base: Target | None = None,
) -> Target:
    values: dict[str, Any] = (base or Target()).model_dump()
    if cloud:
        values["cloud"] = cloud
    if node_class:
        parts = node_class.split("/")
        if len(parts) != 3 or not all(parts):
            raise UsageError(f"--node-class {node_class!r}: expected GROUP/KIND/NAME, e.g. karpenter.azure.com/AKSNodeClass/default")
        values["node_class"] = NodeClassRef(group=parts[0], kind=parts[1], name=parts[2]).model_dump()
    if registry:
        values["registry"] = registry
    if runtime_tag:
        values["runtime_tag"] = runtime_tag
    if default_namespace:
        values["default_namespace"] = default_namespace
    if allow_secrets:
        values["allow_secrets"] = True
    if weights_storage_class:
        values["weights_storage_class"] = weights_storage_class
    return Target.model_validate(values)


def run_compile(sources: Sequence[Path], target: Target, preset_dirs: Sequence[Path], exclude: Sequence[Path] = ()) -> Compiled:
    cwd = Path.cwd()
    catalog = load_presets(preset_dirs, base=cwd)
    inputs = load(sources, base=cwd, exclude=exclude)
    if not inputs.docs and not inputs.problems:
        raise UsageError("no YAML documents found in " + ", ".join(str(s) for s in sources))
    return compile_inputs(inputs, catalog, target)


def report(compiled: Compiled, quiet: bool) -> None:
    diags = sorted_diagnostics(compiled.diagnostics)
    if diags and (not quiet or not compiled.ok):
        click.echo(render_diagnostics(diags), err=True)
    if not compiled.ok:
        sys.exit(int(ExitCode.INVALID))


@click.group(epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="kaito-gen")
def cli() -> None:
    """Compile Kaito Workspaces into Kubernetes + Karpenter manifest bundles for GitOps."""


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Output directory (replaced as a whole).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 with a diff if OUTPUT is out of date.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@target_options
@guarded
def render(sources: tuple[Path, ...], out: Path, check: bool, quiet: bool, preset_dirs: tuple[Path, ...], **target_args: Any) -> None:
    """Render SOURCES (files or directories) into OUTPUT/<namespace>/<workspace>/."""
    target = build_target(**target_args)
    compiled = run_compile(sources, target, preset_dirs, exclude=[out])
    report(compiled, quiet)
    if check:
        diff = unified_diff(read_tree(out), compiled.files)
        if diff:
            click.echo(diff, nl=False)
            click.echo(f"kaito-gen: {out} is out of date; run `kaito-gen render` and commit the result", err=True)
            sys.exit(int(ExitCode.DRIFT))
        if not quiet:
            click.echo(f"{out} is up to date ({len(compiled.bundles)} bundles)", err=True)
        return
    try:
        write(compiled.files, out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc}") from exc
    if not quiet:
        click.echo(f"wrote {len(compiled.bundles)} bundles, {len(compiled.files) - 1} files to {out}", err=True)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@target_options
@guarded
def validate(sources: tuple[Path, ...], fmt: str, preset_dirs: tuple[Path, ...], **target_args: Any) -> None:
    """Validate SOURCES without writing anything."""
    target = build_target(**target_args)
    compiled = run_compile(sources, target, preset_dirs)
    diags = sorted_diagnostics(compiled.diagnostics)
    if fmt == "json":
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


def main(argv: Sequence[str] | None = None) -> None:
    from .commands import register

    register(cli)
    cli.main(args=list(argv) if argv is not None else None, prog_name="kaito-gen")
