"""Peak memory of a tuning run: the whole process's, and the training loop's own increment.

The whole-process peak (ru_maxrss, or peak CUDA memory) includes the interpreter, the imports and the
model. The increment is what the training loop adds on top of the loaded model (activations, gradients,
optimizer state): on CPU the peak RSS during `train()` minus the RSS just before it (VmHWM is reset
there, Linux's `clear_refs` 5); on a GPU peak allocated CUDA memory minus what was allocated before.
"""

from __future__ import annotations

import resource
from pathlib import Path

import torch


def _proc_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None  # not Linux


def _ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MemoryWatch:
    """Start just before `train()`; `report()` after it."""

    def __init__(self) -> None:
        self.load_peak_mb = _ru_maxrss_mb()  # read before the reset, which lowers ru_maxrss too
        self.start_mb = _proc_mb("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.reset = self.start_mb is not None
        except OSError:
            self.reset = False
        self.cuda = bool(torch.cuda.is_available())
        self.gpu_start_mb = 0.0
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.gpu_start_mb = torch.cuda.memory_allocated() / 2**20

    def report(self) -> dict[str, float]:
        high = _proc_mb("VmHWM")
        peaks = {"peak_rss_mb": round(max(self.load_peak_mb, _ru_maxrss_mb(), high or 0.0), 1)}
        if self.reset and high is not None and self.start_mb is not None:
            peaks["train_rss_increment_mb"] = round(high - self.start_mb, 1)
        if self.cuda:
            peak_gpu = torch.cuda.max_memory_allocated() / 2**20
            peaks["peak_gpu_mem_mb"] = round(peak_gpu, 1)
            peaks["train_gpu_increment_mb"] = round(peak_gpu - self.gpu_start_mb, 1)
        return peaks
