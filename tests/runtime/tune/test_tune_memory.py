"""The training-loop memory figure (memory.MemoryWatch) and the defaults BENCHMARKS.md's tuning table measures."""

from __future__ import annotations

import torch
from kaito_runtime.tune.memory import MemoryWatch
from kaito_runtime.tune.schema import TrainingSection


def test_increment_counts_what_the_loop_allocates_and_not_what_came_before() -> None:
    held = torch.ones(64 * 2**20 // 4)  # 64 MiB resident before the watch starts: not part of the increment
    watch = MemoryWatch()
    grown = torch.ones(128 * 2**20 // 4)  # 128 MiB touched during "training"
    report = watch.report()
    del grown
    assert 120 <= report["train_rss_increment_mb"] <= 200
    assert report["peak_rss_mb"] >= watch.start_mb + report["train_rss_increment_mb"] - 1
    assert held.numel() > 0


def test_whole_process_peak_survives_the_reset() -> None:
    spike = torch.ones(256 * 2**20 // 4)  # a load-time peak, freed before training
    del spike
    watch = MemoryWatch()
    report = watch.report()
    assert report["peak_rss_mb"] >= round(watch.load_peak_mb, 1) - 0.1  # reported to 0.1 MB
    assert report["train_rss_increment_mb"] < 100


def test_defaults_are_the_benchmarked_ones() -> None:
    section = TrainingSection()
    assert section.per_device_train_batch_size == 2
    assert section.gradient_checkpointing is True  # as TRL's SFTConfig, which Kaito's job uses
