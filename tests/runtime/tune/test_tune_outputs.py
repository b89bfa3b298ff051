"""Output-dir bookkeeping: which checkpoint a restart resumes from, and what a different run clears away."""

from __future__ import annotations

import json
from pathlib import Path

from kaito_runtime.tune.checkpoints import SENTINEL, latest_complete, prepare_output


def _checkpoint(output: Path, step: int, *, state: str | None = None, optimizer: bool = True) -> Path:
    path = output / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"x")
    if optimizer:
        (path / "optimizer.pt").write_bytes(b"x")
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_resume_picks_the_newest_complete_checkpoint(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 2, state=json.dumps({"global_step": 2}))
    _checkpoint(tmp_path, 4, state=json.dumps({"global_step": 4}))
    _checkpoint(tmp_path, 10, state=json.dumps({"global_step": 10}))
    _checkpoint(tmp_path, 6, state='{"global_st')  # killed while writing its state
    _checkpoint(tmp_path, 8, state=None)  # killed before writing its state
    _checkpoint(tmp_path, 12, state=json.dumps({"global_step": 12}), optimizer=False)
    skipped: list[str] = []
    found = latest_complete(tmp_path, skipped.append)
    assert found is not None and found[0] == 10
    assert skipped == ["skipping incomplete checkpoint checkpoint-12 (cut short by the previous attempt)"]
    assert latest_complete(tmp_path / "missing", skipped.append) is None


def test_a_different_run_clears_the_previous_outputs_and_the_same_run_keeps_them(tmp_path: Path) -> None:
    first = prepare_output(tmp_path, "fingerprint-a")
    assert not first.already_completed and first.discarded == []
    _checkpoint(tmp_path, 2, state=json.dumps({"global_step": 2}))
    for name in ("adapter_config.json", "adapter_model.safetensors", "training_metrics.json", SENTINEL):
        (tmp_path / name).write_text("{}")

    assert prepare_output(tmp_path, "fingerprint-a").already_completed  # a finished run is not redone

    (tmp_path / "adapter_model.safetensors").unlink()  # outputs damaged: not finished after all
    again = prepare_output(tmp_path, "fingerprint-a")
    assert not again.already_completed
    assert not (tmp_path / SENTINEL).exists()  # the sentinel never outlives its outputs
    assert (tmp_path / "checkpoint-2").exists()  # same run: its checkpoints are what it resumes from

    other = prepare_output(tmp_path, "fingerprint-b")
    assert not other.already_completed
    assert sorted(other.discarded) == ["adapter_config.json", "checkpoint-2", "training_metrics.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kaito_tune_run.json"]
