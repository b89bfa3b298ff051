"""``kaito-gen diff``: the semantic diff of a fresh render against a base tree (a dir or a git ref).

Git is only used here, at the CLI edge, to read the output tree of another revision; the
classifier in :mod:`kaito_gen.review.diff` is pure.
"""

from __future__ import annotations

import subprocess
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
from kaito_gen.compiler.write import read_tree
from kaito_gen.config import DEFAULT_CONFIG_NAME
from kaito_gen.core.errors import UsageError
from kaito_gen.review.diff import classify
from kaito_gen.review.diffrender import RENDERERS

MAX_BASE_FILES = 20_000
MAX_BASE_BYTES = 256 * 1024 * 1024
GIT_TIMEOUT_S = 60


def _git(cwd: Path, *args: str, data: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, input=data, capture_output=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise UsageError("--base names a git ref, but git is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise UsageError(f"git {args[0]} took longer than {GIT_TIMEOUT_S}s") from exc
    if done.returncode != 0:
        raise UsageError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def _existing_dir(path: Path) -> Path:
    path = path.absolute()
    while not path.is_dir():
        path = path.parent
    return path


def read_git_tree(ref: str, out: Path) -> dict[str, str]:
    """The files under OUT as committed at REF ({path relative to OUT: text}); empty if OUT is absent there."""
    if ref.startswith("-") or not ref.strip():
        raise UsageError(f"--base {ref!r}: not a directory, and not a usable git ref")
    where = _existing_dir(out)
    try:
        top = Path(_git(where, "rev-parse", "--show-toplevel").decode().strip())
    except UsageError as exc:
        raise UsageError(
            f"--base {ref!r} is not a directory, and {where} is not in a git repository"
        ) from exc
    try:
        _git(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except UsageError as exc:
        raise UsageError(f"--base {ref!r}: no such directory or git revision") from exc
    try:
        rel = out.absolute().resolve().relative_to(top.resolve()).as_posix()
    except ValueError as exc:
        raise UsageError(f"--output {out} is outside the git repository {top}") from exc
    listing = _git(top, "ls-tree", "-r", "-z", "--full-tree", ref, "--", rel)
    entries: list[tuple[str, str]] = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        info, _, raw_path = record.partition(b"\t")
        mode, kind, oid = info.decode().split()
        if kind != "blob" or mode == "120000":  # symlinks are never part of a rendered tree
            continue
        entries.append((oid, raw_path.decode("utf-8", errors="replace")))
    if len(entries) > MAX_BASE_FILES:
        raise UsageError(f"{rel} at {ref} holds {len(entries)} files (limit {MAX_BASE_FILES})")
    blobs = _git(top, "cat-file", "--batch", data="".join(f"{oid}\n" for oid, _ in entries).encode())
    if len(blobs) > MAX_BASE_BYTES:
        raise UsageError(f"{rel} at {ref} is larger than {MAX_BASE_BYTES // (1024 * 1024)} MiB")
    files: dict[str, str] = {}
    pos = 0
    prefix = "" if rel == "." else rel.rstrip("/") + "/"
    for _oid, path in entries:
        end = blobs.index(b"\n", pos)
        size = int(blobs[pos:end].split()[2])
        content = blobs[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1  # the content is followed by a newline
        files[path[len(prefix) :] if path.startswith(prefix) else path] = content.decode(
            "utf-8", errors="replace"
        )
    return dict(sorted(files.items()))


def read_base(base: str | None, out: Path) -> dict[str, str]:
    if base is None:
        return read_tree(out)
    as_dir = Path(base)
    if as_dir.is_dir():
        return read_tree(as_dir)
    return read_git_tree(base, out)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    default=None,
    type=click.Path(path_type=Path),
    help="The committed output directory (default: `output` of the config).",
)
@click.option(
    "--base",
    default=None,
    metavar="GIT-REF|DIR",
    help="Compare against this rendered tree, or OUTPUT as committed at this git ref "
    "(default: OUTPUT as it is on disk).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    help="markdown is meant for a PR comment.",
)
@config_options
@target_options
@guarded
def diff(
    sources: tuple[Path, ...],
    out: Path | None,
    base: str | None,
    fmt: str,
    preset_dirs: tuple[Path, ...],
    config_file: Path | None,
    gitops_flavour: str | None,
    **target_args: Any,
) -> None:
    """Show what a render of SOURCES changes against the base, per workspace and resource, and the kind of change.

    Kinds: in-place, rollout (pod template), replacement (immutable field), tuning-rerun (new Job hash),
    capacity ($/h before and after), added, removed. Always exits 0 unless the input is invalid (2).
    """
    # The same settings as `render`, so that both compare the very same tree.
    run = settings_from(config_file, sources, out, preset_dirs, target_args, gitops_flavour)
    if not run.sources:
        raise UsageError(f"no SOURCES given and no `sources` in {DEFAULT_CONFIG_NAME}")
    if run.out is None:
        raise UsageError(f"no -o/--output given and no `output` in {DEFAULT_CONFIG_NAME}")
    compiled = run_compile(run.sources, run.target, run.preset_dirs, exclude=[run.out], gitops=run.gitops)
    report(compiled, quiet=True)
    old = read_base(base, run.out)
    catalog = load_presets(run.preset_dirs, base=Path.cwd())
    click.echo(RENDERERS[fmt](classify(old, compiled.files, catalog)), nl=False)
