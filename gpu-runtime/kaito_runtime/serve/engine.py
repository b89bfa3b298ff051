"""Step-level continuous batching over the model's forward pass.

One background thread owns the model. Each loop iteration:
  1. drops rows whose client went away;
  2. admits waiting requests into free batch slots: they are prefilled together (left-padded)
     and their KV cache is merged into the running batch's cache;
  3. runs one decode step for every row, samples one token per row, and retires finished rows.

So a new request joins at the next step instead of waiting for running ones to finish.
Rows stay left-aligned on a shared KV cache (padding on the left, masked out); explicit
position ids keep RoPE positions right for every row, and leading all-padding columns are
trimmed when rows leave.

Why not transformers' ContinuousBatchingManager: on this CPU stack it measured no faster than
padded `generate`, it fixes greedy vs. sampling and the temperature processor per manager (not
per request), has no per-request seed, and packs rows into one sequence, which rules out peft's
per-row `adapter_names` (needed to select an adapter by name). See BENCHMARKS.md, `serve`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .cpu import ThreadGovernor
from .detok import TextTracker
from .kvcache import GrowingCache
from .loader import COMBINED_ADAPTER, LoadedModel
from .metrics import Metrics
from .sampling import SamplingParams, select_tokens

if TYPE_CHECKING:
    import torch

log = logging.getLogger("kaito_runtime.serve")

FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass
class Event:
    kind: Literal["token", "done", "error"]
    text: str = ""
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    message: str = ""


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    params: SamplingParams
    on_event: Callable[[Event], None]
    adapter: str | None = None  # peft adapter name; None: the default (combined) model
    request_id: str = ""
    created: float = field(default_factory=time.perf_counter)
    cancelled: bool = False

    def cancel(self) -> None:
        # A plain attribute write is atomic; the engine polls it between steps.
        self.cancelled = True


class QueueFullError(RuntimeError):
    pass


class EngineStoppedError(RuntimeError):
    pass


@dataclass
class _Row:
    req: GenerationRequest
    tracker: TextTracker
    position: int  # position id of `next_token` when it is fed
    next_token: int = -1
    generated: list[int] = field(default_factory=list)
    finished: FinishReason | None = None
    first_token_at: float | None = None


class Engine:
    def __init__(
        self,
        loaded: LoadedModel,
        max_batch_size: int,
        max_queue: int,
        metrics: Metrics | None = None,
        governor: ThreadGovernor | None = None,
    ):
        self.loaded = loaded
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.metrics = metrics
        self._cond = threading.Condition()
        self._pending: collections.deque[GenerationRequest] = collections.deque()
        self._in_system = 0
        self._rows: list[_Row] = []
        self._unmerged: list[GenerationRequest] = []  # admitted this step, not yet in the batch
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._has_adapters = bool(loaded.adapter_routes)
        self.governor = governor  # CPU-only servers: torch threads follow the machine's other load
        self.steps = 0

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kaito-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def in_system(self) -> int:
        return self._in_system

    def submit(self, req: GenerationRequest) -> None:
        """Admit `req` or raise QueueFullError; capacity is the batch plus --max-queue waiting slots."""
        with self._cond:
            if self._stopping:
                raise EngineStoppedError("server is shutting down")
            if self._in_system >= self.max_batch_size + self.max_queue:
                raise QueueFullError(f"{self._in_system} requests in flight")
            self._in_system += 1
            self._pending.append(req)
            self._gauge_queue()
            self._cond.notify()

    # ------------------------------------------------------------------ loop

    def _run(self) -> None:
        import torch

        while True:
            with self._cond:
                while not self._pending and not self._rows and not self._stopping:
                    if self.governor is not None:
                        self.governor.pause()
                    self._cond.wait()
                if self._stopping:
                    break
                free = self.max_batch_size - len(self._rows)
                new = [self._pending.popleft() for _ in range(min(free, len(self._pending)))]
                self._gauge_queue()
            if self.governor is not None:  # here, in the thread that runs torch (OpenMP is per thread)
                threads = self.governor.tick()
                if self.metrics is not None:
                    self.metrics.cpu_threads.set(threads)
            try:
                with torch.inference_mode():
                    self._step(new)
            except Exception as exc:  # a bug or OOM must fail requests, not kill the server thread
                log.exception("generation step failed")
                message = f"generation failed: {type(exc).__name__}: {exc}"
                for row in self._rows:
                    if row.finished is None:
                        self._fail(row.req, message)
                for req in self._unmerged:
                    self._fail(req, message)
                self._rows, self._cache, self._mask, self._unmerged = [], None, None, []
                if "out of memory" in str(exc).lower():
                    self._empty_cache()
        # Stopping: whatever is left (only after the HTTP drain timed out) is failed.
        for row in self._rows:
            self._fail(row.req, "server is shutting down")
        while self._pending:
            self._fail(self._pending.popleft(), "server is shutting down")
        self._rows, self._cache, self._mask = [], None, None

    def _step(self, new: list[GenerationRequest]) -> None:
        self._unmerged = new
        self._drop_cancelled()
        new = self._unmerged = [r for r in new if not self._drop_if_cancelled(r)]
        if new:
            self._prefill(new)
        if self._rows:
            self._decode()
        if self.metrics is not None:
            self.metrics.running.set(len(self._rows))

    # ------------------------------------------------------------------ model calls

    def _forward(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
        rows: list[GenerationRequest],
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "position_ids": positions,
            "past_key_values": cache,
            "use_cache": True,
            "logits_to_keep": 1,
        }
        if self._has_adapters and any(r.adapter is not None for r in rows):
            # peft mixed batch: each row runs through its own adapter.
            kwargs["adapter_names"] = [r.adapter or COMBINED_ADAPTER for r in rows]
        out = self.loaded.model(**kwargs)
        return out.logits[:, -1, :]  # type: ignore[no-any-return]

    def _prefill(self, reqs: list[GenerationRequest]) -> None:
        import torch

        device = self.loaded.device
        longest = max(len(r.prompt_ids) for r in reqs)
        ids = torch.full((len(reqs), longest), self.loaded.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(reqs), longest), dtype=torch.long)
        for i, req in enumerate(reqs):
            n = len(req.prompt_ids)
            ids[i, longest - n :] = torch.tensor(req.prompt_ids, dtype=torch.long)
            mask[i, longest - n :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp_(min=0)
        cache = GrowingCache(max_len=self.loaded.max_model_len)
        logits = self._forward(ids, mask, positions, cache, reqs)
        rows = [
            _Row(req=r, tracker=TextTracker(self.loaded.tokenizer, r.params.stop), position=len(r.prompt_ids))
            for r in reqs
        ]
        if self.metrics is not None:
            self.metrics.prompt_tokens.inc(sum(len(r.prompt_ids) for r in reqs))
        self._merge(cache, mask, rows)
        self._accept(rows, logits)

    def _decode(self) -> None:
        import torch

        assert self._mask is not None
        device = self.loaded.device
        rows = self._rows
        ids = torch.tensor([[r.next_token] for r in rows], dtype=torch.long, device=device)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(rows), 1))], dim=1)
        positions = torch.tensor([[r.position] for r in rows], dtype=torch.long, device=device)
        logits = self._forward(ids, self._mask, positions, self._cache, [r.req for r in rows])
        self.steps += 1
        if self.metrics is not None:
            self.metrics.batch_size.set(len(rows))
            self.metrics.batch_size_hist.observe(len(rows))
        for row in rows:
            row.position += 1
        self._accept(list(rows), logits)

    # ------------------------------------------------------------------ bookkeeping

    def _accept(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Sample one token per row, stream text, retire rows that are done."""
        loaded = self.loaded
        tokens = select_tokens(
            logits,
            [r.req.params for r in rows],
            [r.req.prompt_ids + r.generated if r.req.params.repetition_penalty != 1.0 else [] for r in rows],
            [len(r.generated) for r in rows],
            loaded.eos_token_ids,
        )
        now = time.perf_counter()
        for row, tok in zip(rows, tokens, strict=True):
            req = row.req
            row.generated.append(tok)
            if row.first_token_at is None:
                row.first_token_at = now
                if self.metrics is not None:
                    self.metrics.ttft.observe(now - req.created)
            if tok in loaded.eos_token_ids or tok in req.params.stop_token_ids:
                row.finished = "stop"
            else:
                row.tracker.add(tok)
                row.next_token = tok
                if row.tracker.stopped:
                    row.finished = "stop"
                elif (
                    len(row.generated) >= req.params.max_new_tokens
                    or len(req.prompt_ids) + len(row.generated) >= loaded.max_model_len
                ):
                    row.finished = "length"
            if row.finished is not None:
                row.tracker.finish()
                text = row.tracker.take(final=True)
            else:
                text = row.tracker.take()
            if text:
                self._emit(req, Event("token", text=text))
            if row.finished is not None:
                self._complete(row)
        if self.metrics is not None:
            self.metrics.generated_tokens.inc(len(rows))
        self._retire()

    def _complete(self, row: _Row) -> None:
        reason = row.finished or "stop"
        self._emit(
            row.req,
            Event(
                "done",
                finish_reason=reason,
                prompt_tokens=len(row.req.prompt_ids),
                completion_tokens=len(row.generated),
            ),
        )
        if self.metrics is not None:
            self.metrics.finished.labels(reason).inc()
        self._release()

    def _release(self) -> None:
        with self._cond:
            self._in_system -= 1

    def _fail(self, req: GenerationRequest, message: str) -> None:
        self._emit(req, Event("error", finish_reason="error", message=message))
        if self.metrics is not None:
            self.metrics.finished.labels("error").inc()
        self._release()

    def _emit(self, req: GenerationRequest, event: Event) -> None:
        try:
            req.on_event(event)
        except Exception:  # the client's event loop is gone; nothing to deliver to
            log.debug("dropping event for %s", req.request_id, exc_info=True)

    def _drop_if_cancelled(self, req: GenerationRequest) -> bool:
        if req.cancelled:
            self._emit(req, Event("done", finish_reason="cancelled", prompt_tokens=len(req.prompt_ids)))
            if self.metrics is not None:
                self.metrics.finished.labels("cancelled").inc()
            self._release()
        return req.cancelled

    def _drop_cancelled(self) -> None:
        if any(r.req.cancelled for r in self._rows):
            for row in self._rows:
                if row.req.cancelled and row.finished is None:
                    row.finished = "cancelled"
                    self._complete(row)
            self._retire()
        with self._cond:
            if any(r.cancelled for r in self._pending):
                keep = collections.deque(r for r in self._pending if not r.cancelled)
                gone = [r for r in self._pending if r.cancelled]
                self._pending = keep
                self._gauge_queue()
            else:
                gone = []
        for req in gone:
            self._drop_if_cancelled(req)

    def _retire(self) -> None:
        """Remove finished rows from the batch and the KV cache; trim all-padding columns."""
        import torch

        keep = [i for i, r in enumerate(self._rows) if r.finished is None]
        if len(keep) == len(self._rows):
            return
        if not keep:
            self._rows, self._cache, self._mask = [], None, None
            return
        assert self._mask is not None
        index = torch.tensor(keep, dtype=torch.long, device=self._mask.device)
        self._mask = self._mask.index_select(0, index)
        first = int(self._mask.any(dim=0).nonzero()[0].item())
        self._mask = self._mask[:, first:]
        for layer in self._cache.layers:
            if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
                continue
            layer.keys = layer.keys.index_select(0, index.to(layer.keys.device))[:, :, first:, :]
            layer.values = layer.values.index_select(0, index.to(layer.values.device))[:, :, first:, :]
        self._rows = [self._rows[i] for i in keep]

    def _merge(self, cache: Any, mask: torch.Tensor, rows: list[_Row]) -> None:
        """Append freshly prefilled rows to the running batch, left-padding the shorter cache."""
        import torch
        import torch.nn.functional as F

        self._unmerged = []
        if self._cache is None or self._mask is None:
            self._cache, self._mask, self._rows = cache, mask, rows
            return
        old_len, new_len = self._mask.shape[1], mask.shape[1]
        total = max(old_len, new_len)

        def pad(t: torch.Tensor, n: int) -> torch.Tensor:
            return F.pad(t, (0, 0, n, 0)) if n else t  # [B, H, S, D]: pad S on the left

        for old, fresh in zip(self._cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([pad(old.keys, total - old_len), pad(fresh.keys, total - new_len)], dim=0)
            old.values = torch.cat(
                [pad(old.values, total - old_len), pad(fresh.values, total - new_len)], dim=0
            )
        self._mask = torch.cat(
            [F.pad(self._mask, (total - old_len, 0)), F.pad(mask, (total - new_len, 0))], dim=0
        )
        self._rows = self._rows + rows

    def _gauge_queue(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(len(self._pending))

    def _empty_cache(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
