"""Stage 1, ``load``: read input files and preset tables. The only stage that reads.

Input: paths (files or directories, searched recursively for ``*.yaml``/``*.yml``).
Output: :class:`Inputs`, every YAML document with its source positions, in a
canonical order (by display path, then document index), so that the order in
which the user lists files never changes the result.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kaito_gen.catalog.presets import PresetCatalog, build_catalog
from kaito_gen.core.errors import Diagnostic, PresetError, SourcePos, UsageError
from kaito_gen.core.limits import DEFAULT_LIMITS, Limits, decode_source, size_problem
from kaito_gen.core.yamlsrc import SourceDoc, parse_documents

YAML_SUFFIXES = (".yaml", ".yml")
# Kustomize's own files and kaito-gen's repo config sit beside workspaces in GitOps
# repos; they are not inputs.
IGNORED_NAMES = frozenset(
    {"kustomization.yaml", "kustomization.yml", "Kustomization", "kaito-gen.yaml", "kaito-gen.yml"}
)
# A directory holding this marker is a tree kaito-gen rendered (see write.MARKER):
# its manifests are output, never input, wherever it sits under the sources.
OUTPUT_MARKER = ".kaito-gen"


@dataclass(frozen=True)
class Inputs:
    docs: tuple[SourceDoc, ...]
    problems: tuple[Diagnostic, ...]
    files: tuple[str, ...]


def display_path(path: Path, base: Path | None) -> str:
    """Paths relative to ``base`` when inside it, so output never names the machine's layout."""
    if base is not None:
        try:
            return (
                Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
                if _inside(path, base)
                else str(path)
            )
        except ValueError:
            return path.as_posix()
    return path.as_posix()


def _inside(path: Path, base: Path) -> bool:
    try:
        path.resolve().relative_to(base.resolve())
    except ValueError:
        return False
    return True


def _walk(root: Path, exclude: tuple[Path, ...]) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if OUTPUT_MARKER in filenames:
            dirnames[:] = []
            continue
        # Hidden folders (.git, .venv) and the output tree are never inputs.
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not any(_same(here / d, ex) for ex in exclude)
        )
        for name in sorted(filenames):
            if name.endswith(YAML_SUFFIXES) and name not in IGNORED_NAMES and not name.startswith("."):
                yield here / name


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def collect_files(paths: Sequence[Path], exclude: Sequence[Path] = ()) -> list[Path]:
    excluded = tuple(exclude)
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(_walk(path, excluded))
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    return found


def read_source(
    path: Path, name: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[str | None, list[Diagnostic]]:
    """One file's text, refused (positioned) when too large, not UTF-8 or holding control characters.

    The size is checked before the file is read."""
    try:
        too_big = size_problem(name, path.stat().st_size, limits)
        if too_big is not None:
            return None, [too_big]
        data = path.read_bytes()
    except OSError as exc:
        return None, [
            Diagnostic(SourcePos(name, 1, 1), (), f"cannot read file: {exc.strerror or exc}", code="io")
        ]
    return decode_source(name, data, limits)


def empty_file(name: str) -> Diagnostic:
    return Diagnostic(
        SourcePos(name, 1, 1),
        (),
        "no YAML documents found: the file is empty or holds only comments",
        hint="add a Workspace, InferenceSet or ConfigMap, or delete the file",
        code="empty-file",
    )


def load(
    paths: Sequence[Path],
    *,
    base: Path | None = None,
    exclude: Sequence[Path] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> Inputs:
    files = collect_files(paths, exclude)
    by_name: dict[str, Path] = {}
    for file in files:
        by_name.setdefault(display_path(file, base), file)
    docs: list[SourceDoc] = []
    problems: list[Diagnostic] = []
    for name in sorted(by_name):
        text, refused = read_source(by_name[name], name, limits)
        if text is None:
            problems.extend(refused)
            continue
        file_docs, file_problems = parse_documents(name, text, limits)
        if not file_docs and not file_problems:
            file_problems = [empty_file(name)]
        docs.extend(file_docs)
        problems.extend(file_problems)
    return Inputs(tuple(docs), tuple(problems), tuple(sorted(by_name)))


def builtin_preset_files() -> list[tuple[str, str]]:
    """(display name, text) of the preset tables shipped with kaito-gen."""
    root = resources.files("kaito_gen").joinpath("builtin_presets")
    out = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(YAML_SUFFIXES):
            out.append((f"presets/{entry.name}", entry.read_text(encoding="utf-8")))
    return out


def load_presets(extra: Sequence[Path] = (), *, base: Path | None = None) -> PresetCatalog:
    """The built-in tables, then each ``--presets`` file or directory in order (later overrides)."""
    texts = builtin_preset_files()
    for path in extra:
        for file in collect_files([path]):
            name = display_path(file, base)
            text, refused = read_source(file, name)
            if text is None:
                raise PresetError(refused)
            texts.append((name, text))
    docs: list[SourceDoc] = []
    problems: list[Diagnostic] = []
    for name, text in texts:
        file_docs, file_problems = parse_documents(name, text)
        docs.extend(file_docs)
        problems.extend(file_problems)
    if problems:
        raise PresetError(problems)
    return build_catalog(docs)
