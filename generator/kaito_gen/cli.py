"""The command line: file I/O and environment facts at the edge, the pure pipeline inside.

Exit codes (also in README and ``kaito-gen --help``):

    0  success
    1  `render --check`: the committed output is out of date (a diff is printed)
    2  invalid input, configuration or usage (diagnostics are printed)
    3  internal error (a bug: please report it; KAITO_GEN_DEBUG=1 shows the traceback)
"""

from __future__ import annotations

import dataclasses
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
from .config import DEFAULT_CONFIG_NAME, LoadedConfig, load_config
from .errors import (
    ExitCode,
    InputError,
    KaitoGenError,
    OutputError,
    UsageError,
    render_diagnostics,
    sorted_diagnostics,
)
from .gitops import GitopsSettings, repo_path
from .load import load, load_presets
from .models.target import GitopsTarget, NodeClassRef, Target
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
            _fail(
                f"internal error: {type(exc).__name__}: {exc} (set KAITO_GEN_DEBUG=1 for a traceback)",
                ExitCode.INTERNAL,
            )

    return wrapper  # type: ignore[return-value]


def target_options(func: F) -> F:
    options = [
        click.option(
            "--cloud",
            type=click.Choice(["azure", "aws", "arc", "byo"]),
            default=None,
            help="Target cloud (default azure).",
        ),
        click.option(
            "--node-class", default=None, metavar="GROUP/KIND/NAME", help="Karpenter node class reference."
        ),
        click.option("--registry", default=None, help="Registry of the kaito-runtime image."),
        click.option("--runtime-tag", default=None, help="Tag of the kaito-runtime image."),
        click.option(
            "--namespace", "default_namespace", default=None, help="Namespace for Workspaces that name none."
        ),
        click.option(
            "--presets",
            "preset_dirs",
            multiple=True,
            type=click.Path(exists=True, path_type=Path),
            help="Extra preset tables (file or dir; repeatable; later wins).",
        ),
        click.option(
            "--allow-secrets",
            is_flag=True,
            default=False,
            help="Accept plain Secrets with data in the input (they would be committed).",
        ),
        click.option(
            "--weights-storage-class", default=None, help="StorageClass for model weights on NVMe SKUs."
        ),
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
            raise UsageError(
                f"--node-class {node_class!r}: expected GROUP/KIND/NAME, e.g. karpenter.azure.com/AKSNodeClass/default"
            )
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


def run_compile(
    sources: Sequence[Path],
    target: Target,
    preset_dirs: Sequence[Path],
    exclude: Sequence[Path] = (),
    gitops: GitopsSettings | None = None,
) -> Compiled:
    cwd = Path.cwd()
    catalog = load_presets(preset_dirs, base=cwd)
    inputs = load(sources, base=cwd, exclude=exclude)
    if not inputs.docs and not inputs.problems:
        raise UsageError("no YAML documents found in " + ", ".join(str(s) for s in sources))
    return compile_inputs(inputs, catalog, target, gitops)


def report(compiled: Compiled, quiet: bool) -> None:
    diags = sorted_diagnostics(compiled.diagnostics)
    if diags and (not quiet or not compiled.ok):
        click.echo(render_diagnostics(diags), err=True)
    if not compiled.ok:
        sys.exit(int(ExitCode.INVALID))


# --- kaito-gen.yaml and flags, merged -------------------------------------------------------------


def config_options(func: F) -> F:
    options = [
        click.option(
            "--config",
            "config_file",
            default=None,
            type=click.Path(path_type=Path, dir_okay=False),
            help=f"Repo config (default: ./{DEFAULT_CONFIG_NAME} if it exists). Flags override it.",
        ),
        click.option(
            "--gitops",
            "gitops_flavour",
            type=click.Choice(["argocd", "flux", "none"]),
            default=None,
            help="GitOps objects to add under OUTPUT/_gitops (overrides gitops.flavour).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything one command needs, from kaito-gen.yaml overridden by flags."""

    sources: tuple[Path, ...]
    out: Path | None
    preset_dirs: tuple[Path, ...]
    target: Target
    gitops: GitopsSettings | None
    config: LoadedConfig | None


def find_config(config_file: Path | None) -> LoadedConfig | None:
    if config_file is not None:
        if not config_file.is_file():
            raise UsageError(f"--config {config_file}: no such file")
        return load_config(config_file)
    default = Path(DEFAULT_CONFIG_NAME)
    return load_config(default, DEFAULT_CONFIG_NAME) if default.is_file() else None


def _gitops_path(loaded: LoadedConfig | None, out: Path | None) -> str | None:
    """The output tree's path inside the Git repository: gitops.path, else the output
    relative to the config file's directory (taken as the repository root)."""
    if loaded is not None and loaded.config.gitops.path:
        return repo_path(loaded.config.gitops.path)
    root = loaded.base_dir if loaded is not None else Path.cwd()
    if out is None:
        return None
    try:
        return repo_path(out.absolute().relative_to(root.absolute()).as_posix())
    except ValueError:
        return None


def settings_from(
    config_file: Path | None,
    sources: Sequence[Path],
    out: Path | None,
    preset_dirs: Sequence[Path],
    target_args: dict[str, Any],
    gitops_flavour: str | None = None,
) -> RunSettings:
    loaded = find_config(config_file)
    base = loaded.target() if loaded is not None else None
    target = build_target(**target_args, base=base)
    if gitops_flavour is not None:
        skip = target.gitops.skip_dry_run_on_missing_resource
        gitops_target = GitopsTarget(flavour=gitops_flavour, skip_dry_run_on_missing_resource=skip)
        target = target.model_copy(update={"gitops": gitops_target})
    if not sources and loaded is not None:
        sources = loaded.source_paths()
    if out is None and loaded is not None:
        out = loaded.output_path()
    presets = (*(loaded.preset_paths() if loaded else ()), *preset_dirs)
    gitops: GitopsSettings | None = None
    if target.gitops.flavour != "none":
        if loaded is None:
            raise UsageError(
                f"--gitops {target.gitops.flavour} needs a {DEFAULT_CONFIG_NAME} with a gitops section"
            )
        path = _gitops_path(loaded, out)
        if path is None:
            raise UsageError(
                "cannot tell where the output lives in the Git repository: set gitops.path in the config"
            )
        cfg = loaded.config.gitops.model_copy(update={"flavour": target.gitops.flavour})
        if cfg.flavour == "argocd" and cfg.argocd is None:
            raise UsageError("gitops flavour argocd needs gitops.argocd.repoURL in the config")
        gitops = GitopsSettings(cfg, path)
    return RunSettings(tuple(sources), out, tuple(presets), target, gitops, loaded)


# --- console: colour and progress on a terminal, plain text in CI and pipes ---------------------


def _tty() -> bool:
    return sys.stderr.isatty() and "NO_COLOR" not in os.environ and os.environ.get("CI", "") != "true"


def note(message: str, quiet: bool, colour: str | None = None) -> None:
    if quiet:
        return
    if colour and _tty():
        message = click.style(message, fg=colour)
    click.echo(message, err=True)


def progress(message: str, quiet: bool) -> None:
    """A transient stage line, only on an interactive terminal."""
    if not quiet and _tty():
        click.echo(click.style(f"… {message}", dim=True), err=True)


@click.group(epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="kaito-gen")
def cli() -> None:
    """Compile Kaito Workspaces into Kubernetes + Karpenter manifest bundles for GitOps."""


@cli.command(epilog=EXIT_CODES_HELP)
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
@config_options
@target_options
@guarded
def render(
    sources: tuple[Path, ...],
    out: Path | None,
    check: bool,
    quiet: bool,
    as_json: bool,
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
    compiled = run_compile(run.sources, run.target, run.preset_dirs, exclude=[run.out], gitops=run.gitops)
    report(compiled, quiet)
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
                click.echo(diff, nl=False)
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


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@config_options
@target_options
@guarded
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
    compiled = run_compile(run.sources, run.target, run.preset_dirs)
    diags = sorted_diagnostics(compiled.diagnostics)
    if fmt == "json" or as_json:
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


@cli.command(epilog=EXIT_CODES_HELP)
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
    from .explain import explain as explain_one
    from .explain import find_workspace, render_text

    run = settings_from(config_file, sources, None, preset_dirs, target_args)
    if not run.sources:
        raise UsageError(f"no SOURCES given and no `sources` in {DEFAULT_CONFIG_NAME}")
    catalog = load_presets(run.preset_dirs, base=Path.cwd())
    compiled = run_compile(run.sources, run.target, run.preset_dirs)
    report(compiled, quiet=True)
    rw = find_workspace(compiled.resolved.workspaces, workspace)
    data = explain_one(rw, catalog, run.target)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(render_text(data), nl=False)


@cli.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--dir",
    "directory",
    default=Path("schemas"),
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the schema files live.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the files differ from the models.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@guarded
def schema(directory: Path, check: bool, quiet: bool) -> None:
    """Write the JSON Schemas of Workspace (both apiVersions), kaito-gen.yaml and the preset tables."""
    from .schema import schema_texts

    texts = schema_texts()
    if check:
        current = {
            name: (directory / name).read_text(encoding="utf-8") if (directory / name).is_file() else ""
            for name in texts
        }
        drift = unified_diff(current, texts)
        if drift:
            click.echo(drift, nl=False)
            click.echo(
                f"kaito-gen: {directory} is out of date; run `kaito-gen schema` and commit the result",
                err=True,
            )
            sys.exit(int(ExitCode.DRIFT))
        note(f"{directory}: {len(texts)} schemas up to date", quiet, "green")
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (directory / name).write_text(text, encoding="utf-8", newline="\n")
    except OSError as exc:
        raise OutputError(f"cannot write {directory}: {exc}") from exc
    note(f"wrote {len(texts)} schemas to {directory}", quiet, "green")


def main(argv: Sequence[str] | None = None) -> None:
    from .commands import register

    register(cli)
    cli.main(args=list(argv) if argv is not None else None, prog_name="kaito-gen")
