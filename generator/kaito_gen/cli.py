"""The command line: the click group; every command lives in kaito_gen.commands.

Exit codes (also in README and ``kaito-gen --help``):

    0  success
    1  `render --check`: the committed output is out of date (a diff is printed)
    2  invalid input, configuration or usage (diagnostics are printed)
    3  internal error (a bug: please report it; KAITO_GEN_DEBUG=1 shows the traceback)
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from kaito_gen import __version__
from kaito_gen.commands import register
from kaito_gen.commands.common import EXIT_CODES_HELP


@click.group(epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="kaito-gen")
def cli() -> None:
    """Compile Kaito Workspaces into Kubernetes + Karpenter manifest bundles for GitOps."""


register(cli)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="kaito-gen")
