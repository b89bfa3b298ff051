"""`kaito-vllm` command line: the Kaito flags, the config file, the adapters dir, Ray modes.

Nothing here imports vLLM: `parse_kaito_args(argv) -> (KaitoArgs, rest)` splits a serve command
into the `--kaito-*` part (ours) and the rest (vLLM's own flags, parsed later by vLLM's real
parser in `server.py`). The compiler's contract test calls it in the main venv.

Forms:
  kaito-vllm [serve] <vLLM serve flags> [--kaito-* flags]
  kaito-vllm ray-leader --ray-cluster-size=N [--ray-port=6379] [--ray-wait-seconds=600] -- <serve args>
  kaito-vllm ray-worker --ray-address=HOST [--ray-port=6379]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .args import (
    ADAPTER_NAME_RE,
    CONFIG_KEYS,
    DEFAULT_ADAPTERS_DIR,
    DEFAULT_PORT,
    DEFAULT_RAY_PORT,
    KAITO_PREFIX,
    MIDDLEWARE,
    Command,
    KaitoArgs,
    RayArgs,
    UsageError,
)

log = logging.getLogger("kaito_runtime.vllm")


def _int(flag: str, text: str, lo: int, hi: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not an integer") from None
    if not lo <= value <= hi:
        raise UsageError(f"{flag}: {value} is outside [{lo}, {hi}]")
    return value


def _float(flag: str, text: str, lo: float, hi: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not a number") from None
    if not lo <= value <= hi:
        raise UsageError(f"{flag}: {value} is outside [{lo:g}, {hi:g}]")
    return value


# name -> (takes a value, setter)
_KAITO_FLAGS: dict[str, bool] = {
    "adapters-dir": True,
    "config-file": True,
    "max-probe-steps": True,
    "kv-cache-cpu-memory-utilization": True,
    "disable-rate-limit": False,
    "max-waiting": True,
    "max-body-bytes": True,
    "retry-after-seconds": True,
}


def _apply(ns: KaitoArgs, name: str, value: str | None) -> None:
    flag = KAITO_PREFIX + name
    if name == "adapters-dir":
        ns.adapters_dir = Path(value or DEFAULT_ADAPTERS_DIR)
    elif name == "config-file":
        ns.config_file = Path(value) if value else None
    elif name == "max-probe-steps":
        ns.max_probe_steps = _int(flag, value or "", 0, 64)
    elif name == "kv-cache-cpu-memory-utilization":
        ns.kv_cache_cpu_memory_utilization = _float(flag, value or "", 0.0, 1.0)
    elif name == "disable-rate-limit":
        ns.disable_rate_limit = True
    elif name == "max-waiting":
        ns.max_waiting = _int(flag, value or "", 0, 1_000_000)
    elif name == "max-body-bytes":
        ns.max_body_bytes = _int(flag, value or "", 1024, 1 << 30)
    elif name == "retry-after-seconds":
        ns.retry_after_seconds = _int(flag, value or "", 1, 3600)


def _suggest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, _KAITO_FLAGS, n=1)
    return f" (hint: did you mean '{KAITO_PREFIX}{close[0]}'?)" if close else ""


def parse_kaito_args(argv: Sequence[str]) -> tuple[KaitoArgs, list[str]]:
    """Split serve arguments into Kaito's flags (parsed) and the rest, in order, for vLLM's parser.

    Accepts `--kaito-x=value` and `--kaito-x value`. An unknown `--kaito-*` flag is an error (Kaito
    reserves the prefix), so a typo never reaches vLLM as a confusing message.
    """
    ns = KaitoArgs()
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith(KAITO_PREFIX):
            rest.append(arg)
            continue
        name, eq, value = arg[len(KAITO_PREFIX) :].partition("=")
        if name not in _KAITO_FLAGS:
            raise UsageError(f"unknown flag {KAITO_PREFIX}{name}{_suggest(name)}")
        takes = _KAITO_FLAGS[name]
        if not takes:
            if eq:
                raise UsageError(f"{KAITO_PREFIX}{name} takes no value")
            _apply(ns, name, None)
            continue
        if not eq:
            if i >= len(args) or args[i].startswith("--"):
                raise UsageError(f"{KAITO_PREFIX}{name} needs a value")
            value = args[i]
            i += 1
        _apply(ns, name, value)
    return ns, rest


# --------------------------------------------------------------------------- config file


def _flag_args(key: str, value: Any, where: str) -> list[str]:
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", key):
        raise UsageError(f"{where}: {key!r} is not a vLLM flag name")
    name = key.replace("_", "-")
    if name.startswith("kaito-"):
        raise UsageError(f"{where}.{key}: kaito flags do not belong in the vllm map")
    if value is True:
        return [f"--{name}"]
    if value is False:
        return [f"--no-{name}"]
    if value is None:
        raise UsageError(f"{where}.{key}: a value is required")
    if isinstance(value, dict | list):
        return [f"--{name}={json.dumps(value, sort_keys=True)}"]
    return [f"--{name}={value}"]


def config_file_args(path: Path, ns: KaitoArgs) -> list[str]:
    """Read Kaito's inference_config.yaml: the `vllm:` map as flags (appended AFTER the command line, so
    they override it, as Kaito's wrapper does), and the top-level Kaito keys into `ns`."""
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise UsageError(f"{path}{pos}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: the config file must be a mapping, got {type(doc).__name__}")
    out: list[str] = []
    for key in doc:
        if key not in CONFIG_KEYS:
            # Kaito's file may carry keys for the other engine; they are not ours to judge.
            log.info("%s: key %r is not used by the vLLM runtime", path, key)
    vllm = doc.get("vllm")
    if vllm is not None:
        if not isinstance(vllm, dict):
            raise UsageError(f"{path}: vllm: must be a mapping of vLLM flags")
        for key, value in vllm.items():
            out += _flag_args(key, value, f"{path}: vllm")
    if "max_probe_steps" in doc:
        _apply(ns, "max-probe-steps", str(doc["max_probe_steps"]))
    if "kv_cache_cpu_memory_utilization" in doc and ns.kv_cache_cpu_memory_utilization is None:
        _apply(ns, "kv-cache-cpu-memory-utilization", str(doc["kv_cache_cpu_memory_utilization"]))
    return out


# --------------------------------------------------------------------------- adapters


def adapter_modules(directory: Path) -> list[tuple[str, Path]]:
    """Every subdirectory of the adapters dir that holds an adapter_config.json, as (name, path), sorted."""
    if not directory.is_dir():
        return []
    found = []
    for child in sorted(directory.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        if not (child / "adapter_config.json").is_file():
            log.warning("%s: no adapter_config.json; not an adapter, skipped", child)
            continue
        if not ADAPTER_NAME_RE.match(child.name):
            raise UsageError(f"{child}: adapter directory name is not a valid model name")
        found.append((child.name, child))
    return found


def _has_flag(rest: Sequence[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in rest)


def serve_args(ns: KaitoArgs, rest: Sequence[str]) -> list[str]:
    """The full argument list for vLLM's parser: Kaito's defaults, the command line, the config file's
    `vllm:` map, our middleware and one `--lora-modules` per adapter directory."""
    args = [f"--port={DEFAULT_PORT}", *rest]
    if ns.config_file is not None:
        args += config_file_args(ns.config_file, ns)
    adapters = adapter_modules(ns.adapters_dir)
    if adapters:
        if not _has_flag(args, "--enable-lora"):
            log.info("adapters found in %s: adding --enable-lora", ns.adapters_dir)
            args.append("--enable-lora")
        args.append("--lora-modules")
        args += [f"{name}={path}" for name, path in adapters]
    args.append(f"--middleware={MIDDLEWARE}")
    return args


# --------------------------------------------------------------------------- whole command


def _ray_parser(role: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"kaito-vllm ray-{role}", exit_on_error=False)
    p.add_argument("--ray-port", type=int, default=DEFAULT_RAY_PORT)
    if role == "leader":
        p.add_argument("--ray-cluster-size", type=int, required=True)
        p.add_argument("--ray-wait-seconds", type=float, default=600.0)
    else:
        p.add_argument("--ray-address", required=True)
    return p


def parse_command(argv: Sequence[str]) -> Command:
    """Parse a whole `kaito-vllm ...` argument list (without the program name)."""
    args = list(argv)
    if args and args[0] == "serve":
        args = args[1:]
    if args and args[0] in ("ray-leader", "ray-worker"):
        role = args[0].removeprefix("ray-")
        own, sep, serve = args[1:], [], []
        if "--" in own:
            at = own.index("--")
            own, sep, serve = own[:at], ["--"], own[at + 1 :]
        try:
            rns, unknown = _ray_parser(role).parse_known_args(own)
        except argparse.ArgumentError as exc:
            raise UsageError(f"ray-{role}: {exc}") from None
        except SystemExit:
            raise UsageError(f"ray-{role}: bad arguments {own!r}") from None
        if unknown:
            raise UsageError(f"ray-{role}: unknown argument(s) {' '.join(unknown)} (serve flags go after --)")
        if not 1 <= rns.ray_port <= 65535:
            raise UsageError(f"--ray-port: {rns.ray_port} is outside [1, 65535]")
        if role == "leader":
            if not 1 <= rns.ray_cluster_size <= 4096:
                raise UsageError(f"--ray-cluster-size: {rns.ray_cluster_size} is outside [1, 4096]")
            if not sep:
                raise UsageError("ray-leader: the serve arguments follow '--'")
            ray = RayArgs(
                "leader", rns.ray_port, cluster_size=rns.ray_cluster_size, wait_seconds=rns.ray_wait_seconds
            )
            kaito, rest = parse_kaito_args(serve)
            if not _has_flag(rest, "--distributed-executor-backend"):
                rest.append("--distributed-executor-backend=ray")
            return Command(kaito, rest, ray)
        if sep and serve:
            raise UsageError("ray-worker takes no serve arguments")
        if not rns.ray_address:
            raise UsageError("--ray-address must not be empty")
        return Command(KaitoArgs(), [], RayArgs("worker", rns.ray_port, address=rns.ray_address))
    kaito, rest = parse_kaito_args(args)
    return Command(kaito, rest)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cmd = parse_command(sys.argv[1:] if argv is None else argv)
        if cmd.ray is not None and cmd.ray.role == "worker":
            from .ray import run_worker

            return run_worker(cmd.ray)
        full = serve_args(cmd.kaito, cmd.rest)
        if cmd.ray is not None:
            from .ray import start_leader

            start_leader(cmd.ray)
    except UsageError as exc:
        print(f"kaito-vllm: error: {exc}", file=sys.stderr)
        return 2
    from .server import serve

    return serve(cmd.kaito, full, os.environ)


if __name__ == "__main__":
    raise SystemExit(main())
