"""Checkpoints in the output dir, automatic resume, and the run fingerprint that guards both.

A restarted Job (evicted GPU pod, node drain) finds the `checkpoint-<step>` directories the previous
attempt left in the output volume and continues from the newest *complete* one: Trainer writes
`trainer_state.json` last, so a checkpoint cut short by a kill lacks it (or holds broken JSON) and is
skipped. `kaito_tune_run.json` records a fingerprint of everything that shapes the training (config
text, method, model, revision, data files); checkpoints or outputs left by a *different* run are removed
instead of resumed, and a run that already finished (sentinel present, adapter files intact) is not
trained again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_FILE = "kaito_tune_run.json"
SENTINEL = "fine_tuning_completed.txt"
METRICS_FILE = "training_metrics.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def fingerprint(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """All checkpoint-<step> directories, newest first."""
    if not output_dir.is_dir():
        return []
    found = []
    for child in output_dir.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found, reverse=True)


def is_complete(step: int, path: Path) -> bool:
    try:
        state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (
        isinstance(state, dict)
        and state.get("global_step") == step
        and (path / "adapter_model.safetensors").is_file()
        and (path / "optimizer.pt").is_file()
    )


def latest_complete(output_dir: Path, log: Callable[[str], None]) -> tuple[int, Path] | None:
    for step, path in checkpoints(output_dir):
        if is_complete(step, path):
            return step, path
        log(f"skipping incomplete checkpoint {path.name} (cut short by the previous attempt)")
    return None


@dataclass(frozen=True)
class Preparation:
    already_completed: bool
    discarded: list[str]


def prepare_output(output_dir: Path, run_fingerprint: str) -> Preparation:
    """Make `output_dir` ready for this run; say whether the run already finished there."""
    output_dir.mkdir(parents=True, exist_ok=True)
    run_file = output_dir / RUN_FILE
    previous = None
    try:
        previous = json.loads(run_file.read_text()).get("fingerprint")
    except (OSError, json.JSONDecodeError, AttributeError):
        previous = None
    discarded: list[str] = []
    same_run = previous == run_fingerprint
    if (
        same_run
        and (output_dir / SENTINEL).is_file()
        and all((output_dir / f).is_file() for f in ADAPTER_FILES)
    ):
        return Preparation(already_completed=True, discarded=[])
    # Not finished: the sentinel must not outlive the outputs it vouches for.
    (output_dir / SENTINEL).unlink(missing_ok=True)
    if not same_run:
        for _, path in checkpoints(output_dir):
            shutil.rmtree(path)
            discarded.append(path.name)
        for name in (*ADAPTER_FILES, METRICS_FILE):
            if (output_dir / name).exists():
                (output_dir / name).unlink()
                discarded.append(name)
    write_json_atomic(run_file, {"fingerprint": run_fingerprint})
    return Preparation(already_completed=False, discarded=discarded)
