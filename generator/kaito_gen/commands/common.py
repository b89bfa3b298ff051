"""What every command shares: exit-code mapping, target/config options, settings, reporting.

File I/O and environment facts live here, at the edge; the pure pipeline is in kaito_gen.compiler.

Exit codes (also in README and ``kaito-gen --help``):

    0  success
    1  `render --check`: the committed output is out of date (a diff is printed)
    2  invalid input, configuration or usage (diagnostics are printed)
    3  internal error (a bug: please report it; KAITO_GEN_DEBUG=1 shows the traceback)
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from kaito_gen.compiler.emit.gitops import GitopsSettings, repo_path
from kaito_gen.compiler.load import load, load_presets
from kaito_gen.compiler.pipeline import Compiled, compile_inputs
from kaito_gen.config import DEFAULT_CONFIG_NAME, LoadedConfig, load_config
from kaito_gen.core.errors import (
    ExitCode,
    InputError,
    KaitoGenError,
    UsageError,
    render_diagnostics,
    sorted_diagnostics,
)
from kaito_gen.core.limits import DEFAULT_LIMITS, Limits
from kaito_gen.models.target import GitopsTarget, NodeClassRef, Target
from kaito_gen.review.annotations import ANNOTATION_FORMATS, render_annotations

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
        click.option(
            "--require-pinned",
            is_flag=True,
            default=False,
            help="Refuse models whose preset row has `revision: unpinned`.",
        ),
        click.option(
            "--require-digests",
            is_flag=True,
            default=False,
            help="Refuse container images not pinned by @sha256 digest.",
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
    require_pinned: bool = False,
    require_digests: bool = False,
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
    if require_pinned:
        values["require_pinned"] = True
    if require_digests:
        values["require_digests"] = True
    return Target.model_validate(values)


def run_compile(
    sources: Sequence[Path],
    target: Target,
    preset_dirs: Sequence[Path],
    exclude: Sequence[Path] = (),
    gitops: GitopsSettings | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Compiled:
    cwd = Path.cwd()
    catalog = load_presets(preset_dirs, base=cwd)
    inputs = load(sources, base=cwd, exclude=exclude, limits=limits)
    if not inputs.docs and not inputs.problems:
        raise UsageError("no YAML documents found in " + ", ".join(str(s) for s in sources))
    return compile_inputs(inputs, catalog, target, gitops)


def report(compiled: Compiled, quiet: bool, fmt: str = "text") -> None:
    """Print the diagnostics (stderr; stdout for the github/sarif annotation formats); exit 2 on errors."""
    diags = sorted_diagnostics(compiled.diagnostics)
    if fmt in ANNOTATION_FORMATS:
        click.echo(render_annotations(fmt, diags, Path.cwd()), nl=False)
        if not compiled.ok:
            sys.exit(int(ExitCode.INVALID))
        return
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
    limits: Limits = DEFAULT_LIMITS


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
    limits = loaded.config.limits.to_limits() if loaded is not None else DEFAULT_LIMITS
    return RunSettings(tuple(sources), out, tuple(presets), target, gitops, loaded, limits)


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
