"""Run vLLM's OpenAI server (the `vllm serve` entry of the pinned vLLM) with Kaito's additions.

Only public surfaces of vLLM are used: its serve argument parser (`make_arg_parser` on a
`FlexibleArgumentParser`, with `validate_parsed_serve_args`), `--middleware` (our ASGI middleware,
see middleware.py), `--lora-modules` (the adapters dir) and the `serve` subcommand's own `cmd`, which
is what `vllm serve` runs. Nothing inside vLLM is patched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import MutableMapping, Sequence

from .args import SETTINGS_ENV, KaitoArgs

VLLM_VERSION = "0.32.0"


def vllm_parser() -> argparse.ArgumentParser:
    """vLLM's own `vllm serve` parser (the real one, from the installed vLLM)."""
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser: argparse.ArgumentParser = make_arg_parser(FlexibleArgumentParser(prog="kaito-vllm"))
    return parser


def parse_vllm_args(args: Sequence[str]) -> argparse.Namespace:
    from vllm.entrypoints.launchers.cli_args import validate_parsed_serve_args

    ns = vllm_parser().parse_args(list(args))
    if getattr(ns, "model_tag", None):
        ns.model = ns.model_tag
    validate_parsed_serve_args(ns)
    return ns


def middleware_settings(kaito: KaitoArgs, ns: argparse.Namespace) -> dict[str, object]:
    names = getattr(ns, "served_model_name", None) or [ns.model]
    return {
        "served_model": names[0],
        "rate_limit": not kaito.disable_rate_limit,
        "max_num_seqs": ns.max_num_seqs,  # None: the engine's own default, read at the first request
        "max_waiting": kaito.max_waiting,  # None: max_num_seqs (Kaito)
        "max_body_bytes": kaito.max_body_bytes,
        "retry_after_seconds": kaito.retry_after_seconds,
    }


def serve(kaito: KaitoArgs, args: Sequence[str], environ: MutableMapping[str, str]) -> int:
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.logger import configure_logging_from_args

    try:
        ns = parse_vllm_args(args)
    except SystemExit as exc:  # argparse already printed the positioned message
        return int(exc.code or 2)
    except (ValueError, TypeError) as exc:
        print(f"kaito-vllm: error: {exc}", file=sys.stderr)
        return 2
    # The middleware reads this when vLLM builds the app (in this process, or in API-server
    # subprocesses, which inherit the environment).
    environ[SETTINGS_ENV] = json.dumps(middleware_settings(kaito, ns))
    if environ is not os.environ:
        os.environ[SETTINGS_ENV] = environ[SETTINGS_ENV]
    configure_logging_from_args(ns)
    ServeSubcommand.cmd(ns)
    return 0
