"""Trainer callbacks: JSON progress lines (see `events`) and a time-based checkpoint floor.

tokens/s counts non-padding input tokens (Trainer's `num_input_tokens_seen` in "non_padding" mode) over
wall time since the previous progress line.
"""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from kaito_runtime.tune.events import emit


class JsonProgressCallback(TrainerCallback):
    def __init__(self) -> None:
        self.session_start = time.monotonic()
        self.session_tokens_start = 0
        self.last_time = self.session_start
        self.last_tokens = 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.session_start = self.last_time = time.monotonic()
        self.session_tokens_start = self.last_tokens = int(state.num_input_tokens_seen)
        emit("train_begin", global_step=state.global_step, max_steps=state.max_steps)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        logs = logs or {}
        if "loss" in logs:
            now, tokens = time.monotonic(), int(state.num_input_tokens_seen)
            elapsed = max(now - self.last_time, 1e-9)
            emit(
                "progress",
                step=state.global_step,
                max_steps=state.max_steps,
                epoch=round(float(state.epoch or 0), 4),
                loss=float(logs["loss"]),
                learning_rate=logs.get("learning_rate"),
                grad_norm=logs.get("grad_norm"),
                tokens=tokens,
                tokens_per_s=round((tokens - self.last_tokens) / elapsed, 1),
            )
            self.last_time, self.last_tokens = now, tokens
        elif "eval_loss" in logs:
            emit("eval", step=state.global_step, eval_loss=float(logs["eval_loss"]))

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        emit("checkpoint", step=state.global_step, path=f"{args.output_dir}/checkpoint-{state.global_step}")

    def session(self, state: TrainerState) -> tuple[int, float]:
        """(non-padding tokens, seconds) trained in this process, resumed steps excluded."""
        return int(
            state.num_input_tokens_seen
        ) - self.session_tokens_start, time.monotonic() - self.session_start


class TimedCheckpointCallback(TrainerCallback):
    """Save a checkpoint at least every `minutes`, whatever save_strategy says.

    Kaito's templates set `save_strategy: "no"`; an evicted GPU pod would then start over. A time-based
    floor keeps a restart cheap without asking users to change their ConfigMaps (0 disables it).
    """

    def __init__(self, minutes: float) -> None:
        self.interval_s = minutes * 60
        self.last_save = time.monotonic()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        if self.interval_s > 0 and time.monotonic() - self.last_save >= self.interval_s:
            control.should_save = True
        return control

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.last_save = time.monotonic()
