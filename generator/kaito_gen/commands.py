"""Commands beyond render/validate, registered on the click group at start-up."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    from .diff_cmd import diff
    from .presets_cmd import presets

    group.add_command(diff)
    group.add_command(presets)
    try:
        from .status import status
    except ImportError:  # pragma: no cover - status ships with the package
        return
    group.add_command(status)
