"""Write generator/kaito_gen/catalog/vllm_args.json from vLLM's own `vllm serve` argument parser.

Run with the interpreter that has vLLM installed:  .venv-vllm/bin/python generator/scripts/gen_vllm_args.py
`--check` compares instead of writing (exit 1 on drift); the test suite runs that form.
Each flag (every spelling, without the leading dashes) maps to the kind of value it takes, which
is what kaito-gen checks a user's `vllm:` section of inference_config.yaml against.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datafile import write_or_check  # generator/scripts/ is on sys.path when a script runs

OUT = Path(__file__).resolve().parents[1] / "kaito_gen" / "catalog" / "vllm_args.json"


def _kind(action: argparse.Action) -> dict[str, object]:
    if action.nargs == 0:
        return {"kind": "bool"}
    if action.choices is not None:
        return {"kind": "choice", "choices": sorted(str(c) for c in action.choices)}
    if action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction):
        return {"kind": "list"}
    name = getattr(action.type, "__name__", "")
    if action.type is int:
        return {"kind": "int"}
    if action.type is float:
        return {"kind": "float"}
    if name == "human_readable_int":
        return {"kind": "size"}
    if name == "human_readable_int_or_auto":
        return {"kind": "size-or-auto"}
    if name in ("loads", "parse_dataclass", "union_dict_and_str"):
        return {"kind": "json"}
    return {"kind": "str"}


def generate() -> str:
    import vllm
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
    args: dict[str, dict[str, object]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        kind = _kind(action)
        for option in action.option_strings:
            if option.startswith("--"):
                args[option[2:]] = kind
    doc = {"vllmVersion": vllm.__version__, "args": dict(sorted(args.items()))}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main() -> int:
    return write_or_check(OUT, generate(), "generator/scripts/gen_vllm_args.py", sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
